//! `spawn_app` and friends.

use std::sync::Arc;
use std::time::Duration;

use fal_client::{Client, KeyCredentials};
use fal_core::{Clock, OsRandom, Pepper, Scope, SystemClock, Timestamp, UserId};
use fal_server::{App, Config, RunningServer};
use fal_store::SqlStore;
use fal_store::testing::{seed_key, seed_user};
use secrecy::SecretString;
use serde_json::Value;

/// A running app and what a test needs to talk to it.
pub struct TestApp {
    pub server: Option<RunningServer>,
    pub url: String,
    pub admin_id: String,
    pub admin_secret: String,
    pub dir: tempfile::TempDir,
    pub http: reqwest::Client,
}

pub fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::new(dir.to_path_buf());
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.usage_flush_interval = Duration::from_millis(50);
    config
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}, Arc::new(SystemClock)).await
}

pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config), clock: Arc<dyn Clock>) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut config = config(dir.path());
    tweak(&mut config);
    let mut app = App::build(config, clock, Arc::new(OsRandom)).await.unwrap();
    let key = app
        .take_bootstrap_key()
        .expect("first start makes a bootstrap key");
    let server = app.spawn().await.unwrap();
    TestApp {
        url: server.url(),
        server: Some(server),
        admin_id: key.key_id.to_string(),
        admin_secret: key.secret.expose().to_owned(),
        dir,
        http: fal_client::http_client(),
    }
}

pub fn creds(id: &str, secret: &str) -> KeyCredentials {
    KeyCredentials {
        key_id: id.to_owned(),
        secret: SecretString::from(secret.to_owned()),
        source: fal_client::credentials::CredentialSource::Flag,
    }
}

impl TestApp {
    pub fn admin(&self) -> Client {
        Client::new(&self.url, Some(creds(&self.admin_id, &self.admin_secret)))
    }

    pub fn client(&self, id: &str, secret: &str) -> Client {
        Client::new(&self.url, Some(creds(id, secret)))
    }

    pub fn admin_auth(&self) -> String {
        format!("Key {}:{}", self.admin_id, self.admin_secret)
    }

    /// A raw request; returns status, headers and JSON body (Null if none).
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        auth: Option<&str>,
        body: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_owned());
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let json = if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
        };
        (status, headers, json)
    }

    /// Opens the app's database directly, as a second process would.
    pub async fn store(&self) -> SqlStore {
        SqlStore::open_sqlite(&self.dir.path().join("fal.db"), Timestamp(0))
            .await
            .unwrap()
    }

    /// Creates another user with one key of `scope`, straight in storage
    /// (there is no sign-up API before GitHub sign-in).
    pub async fn other_user_key(&self, scope: Scope) -> (String, String) {
        self.user_key("mallory", None, scope).await
    }

    /// A GitHub-like user `login` (GitHub id `github_id`) with one key of
    /// `scope`, straight in storage; returns `Key id:secret` for a header.
    pub async fn github_user_auth(&self, login: &str, github_id: i64, scope: Scope) -> String {
        let (id, secret) = self.user_key(login, Some(github_id), scope).await;
        format!("Key {id}:{secret}")
    }

    /// The pepper the app hashes secrets with.
    fn pepper(&self) -> Pepper {
        fal_server::pepper::load(&self.dir.path().join("pepper")).unwrap()
    }

    /// A new key of `scope` for the existing user `user_id`, straight in
    /// storage; returns `Key id:secret` for a header.
    pub async fn key_for(&self, user_id: &str, scope: Scope) -> String {
        let store = self.store().await;
        let user_id = UserId::from_stored(user_id.to_owned());
        let key = seed_key(&store, &self.pepper(), &user_id, scope, "extra")
            .await
            .unwrap();
        store.close().await;
        key.header()
    }

    /// A user with one key of `scope`, straight in storage.
    pub async fn user_key(
        &self,
        nickname: &str,
        github_id: Option<i64>,
        scope: Scope,
    ) -> (String, String) {
        let store = self.store().await;
        let user = seed_user(&store, nickname, github_id).await.unwrap();
        let key = seed_key(&store, &self.pepper(), &user.user_id, scope, "other")
            .await
            .unwrap();
        store.close().await;
        (key.key_id, key.secret)
    }

    /// A new user with one API key limited to `limit` (`100/s`), straight
    /// in storage; returns `Key id:secret` for a header, and the user.
    pub async fn limited_key(&self, nickname: &str, limit: &str) -> (String, UserId) {
        let store = self.store().await;
        let user = seed_user(&store, nickname, None).await.unwrap();
        let key = seed_key(&store, &self.pepper(), &user.user_id, Scope::Api, "limited")
            .await
            .unwrap();
        let limit = fal_core::RateLimit::parse(limit).ok();
        let id = key.key_id.parse().unwrap();
        let set =
            fal_store::KeyAdmin::set_rate_limit(&store, &user.user_id, &id, limit, Timestamp(1));
        assert!(set.await.unwrap());
        store.close().await;
        (key.header(), user.user_id)
    }

    pub async fn stop(&mut self) {
        if let Some(s) = self.server.take() {
            s.stop().await;
        }
    }
}
