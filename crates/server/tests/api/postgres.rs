//! Several servers on one PostgreSQL: shared pepper, revocation everywhere
//! at once, database faults, concurrent writers. Each test makes its own
//! database; without `FAL_TEST_DATABASE_URL` they skip loudly (and fail
//! under CI).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use fal_client::{Client, ClientError};
use fal_core::{Clock, ManualClock, OsRandom, SystemClock, Timestamp};
use fal_server::app::StartError;
use fal_server::{App, Config, RunningServer};
use fal_store::testing::{create_database, drop_database, postgres_url_or_skip};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

use crate::helpers::creds;

/// A database for one test, dropped at the end.
pub(crate) struct Db {
    pub(crate) base: String,
    pub(crate) url: String,
    /// Shared by every server of the test: the deployment's pepper.
    dir: tempfile::TempDir,
}

impl Db {
    pub(crate) async fn new(test: &str) -> Option<Db> {
        let base = postgres_url_or_skip(test)?;
        let url = create_database(&base, "fal_srv").await.unwrap();
        Some(Db {
            base,
            url,
            dir: tempfile::tempdir().unwrap(),
        })
    }

    pub(crate) fn config(&self, name: &str, url: &str, staleness: Duration) -> Config {
        let mut c = Config::new(self.dir.path().join(name));
        c.listen = "127.0.0.1:0".parse().unwrap();
        c.database_url = Some(url.to_owned());
        c.pepper_file = Some(self.dir.path().join("pepper"));
        c.max_staleness = staleness;
        c.usage_flush_interval = Duration::from_millis(100);
        // These tests poll revoked keys for their 401s by the dozen, all
        // from 127.0.0.1: failed-auth throttling would block the address.
        c.throttle.failures = 0;
        c
    }

    pub(crate) async fn server(
        &self,
        name: &str,
        url: &str,
        staleness: Duration,
        clock: Arc<dyn Clock>,
    ) -> (RunningServer, Option<(String, String)>) {
        let mut app = App::build(self.config(name, url, staleness), clock, Arc::new(OsRandom))
            .await
            .unwrap();
        let boot = app
            .take_bootstrap_key()
            .map(|k| (k.key_id.to_string(), k.secret.expose().to_owned()));
        (app.spawn().await.unwrap(), boot)
    }

    pub(crate) async fn drop(self) {
        drop_database(&self.base, &self.url).await.unwrap();
    }
}

fn client(server: &RunningServer, id: &str, secret: &str) -> Client {
    Client::new(&server.url(), Some(creds(id, secret)))
}

fn status_of(r: Result<fal_client::CurrentUser, ClientError>) -> u16 {
    match r {
        Ok(_) => 200,
        Err(ClientError::Api { status, .. }) => status,
        Err(e) => panic!("{e}"),
    }
}

/// Polls until `check` holds or `limit` passes; returns how long it took.
async fn within<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_revoked_on_one_server_is_refused_by_the_other_at_once() {
    let Some(db) = Db::new("revocation across servers").await else {
        return;
    };
    // A staleness bound of one minute: only the notification can explain
    // a refusal within the two seconds allowed below.
    let minute = Duration::from_secs(60);
    let (a, boot) = db.server("a", &db.url, minute, Arc::new(SystemClock)).await;
    let (b, second_boot) = db.server("b", &db.url, minute, Arc::new(SystemClock)).await;
    assert!(second_boot.is_none(), "only the first server bootstraps");
    let (admin_id, admin_secret) = boot.unwrap();

    let k = client(&a, &admin_id, &admin_secret)
        .create_key("API", "roaming")
        .await
        .unwrap();
    let on_b = client(&b, &k.key_id, &k.key_secret);
    assert_eq!(
        status_of(on_b.current_user().await),
        200,
        "a key made on A works on B"
    );
    client(&a, &admin_id, &admin_secret)
        .revoke_key(&k.key_id)
        .await
        .unwrap();
    let took = within(Duration::from_secs(2), || async {
        status_of(on_b.current_user().await) == 401
    })
    .await;
    assert!(
        took.is_some(),
        "B still accepted the key 2 s after A revoked it"
    );

    // Apps, too: added on A, callable through B at once (B had cached "no such app").
    let admin_b = client(&b, &admin_id, &admin_secret);
    let probe = admin_b.run("acme/new", b"{}".to_vec()).await;
    assert!(matches!(probe, Err(ClientError::Api { status: 404, .. })));
    client(&a, &admin_id, &admin_secret)
        .create_app("acme/new", "http://127.0.0.1:9", Some(500))
        .await
        .unwrap();
    let seen = within(Duration::from_secs(2), || async {
        !matches!(
            admin_b.run("acme/new", b"{}".to_vec()).await,
            Err(ClientError::Api { status: 404, .. })
        )
    })
    .await;
    assert!(seen.is_some(), "B did not see the app registered on A");
    a.stop().await;
    b.stop().await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_starting_together_migrate_once_and_bootstrap_once() {
    let Some(db) = Db::new("concurrent start").await else {
        return;
    };
    let build = |name: &'static str| {
        let config = db.config(name, &db.url, Duration::from_secs(5));
        async move {
            App::build(config, Arc::new(SystemClock), Arc::new(OsRandom))
                .await
                .unwrap()
        }
    };
    let (mut a, mut b, mut c) = tokio::join!(build("a"), build("b"), build("c"));
    let printed = [
        a.take_bootstrap_key(),
        b.take_bootstrap_key(),
        c.take_bootstrap_key(),
    ]
    .iter()
    .filter(|k| k.is_some())
    .count();
    assert_eq!(printed, 1);
    drop((a, b, c));
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_another_pepper_refuses_to_start() {
    let Some(db) = Db::new("pepper mismatch").await else {
        return;
    };
    let (a, _) = db
        .server("a", &db.url, Duration::from_secs(5), Arc::new(SystemClock))
        .await;
    let mut other = db.config("b", &db.url, Duration::from_secs(5));
    other.pepper_file = Some(db.dir.path().join("b-pepper"));
    let err = App::build(other, Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .err()
        .expect("must refuse");
    assert!(matches!(err, StartError::PepperMismatch { .. }), "{err}");
    a.stop().await;
    db.drop().await;
}

/// A TCP proxy between a server and PostgreSQL that a test can cut.
struct CutProxy {
    addr: std::net::SocketAddr,
    cut: Arc<Mutex<bool>>,
    links: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl CutProxy {
    async fn start(target: String) -> CutProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let cut = Arc::new(Mutex::new(false));
        let links: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let (c, l) = (cut.clone(), links.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if *c.lock().unwrap() {
                    drop(inbound); // refused while cut
                    continue;
                }
                let target = target.clone();
                let link = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                l.lock().unwrap().push(link.abort_handle());
            }
        })
        .abort_handle();
        CutProxy {
            addr,
            cut,
            links,
            accept,
        }
    }

    /// Drops every open connection and refuses new ones.
    fn cut(&self) {
        *self.cut.lock().unwrap() = true;
        for l in self.links.lock().unwrap().drain(..) {
            l.abort();
        }
    }

    fn restore(&self) {
        *self.cut.lock().unwrap() = false;
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// `postgres://user@host:port/db` → (`host:port`, the URL with `via` instead).
fn through(url: &str, via: std::net::SocketAddr) -> (String, String) {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (userinfo, hostpart) = match rest.split_once('@') {
        Some((u, h)) => (format!("{u}@"), h),
        None => (String::new(), rest),
    };
    let (hostport, path) = hostpart.split_once('/').unwrap();
    let hostport = if hostport.contains(':') {
        hostport.to_owned()
    } else {
        format!("{hostport}:5432")
    };
    (hostport, format!("{scheme}://{userinfo}{via}/{path}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_503_within_bounds_and_recovers_by_itself() {
    let Some(db) = Db::new("database outage").await else {
        return;
    };
    let (pg, _) = through(&db.url, "127.0.0.1:1".parse().unwrap());
    let proxy = CutProxy::start(pg).await;
    let (_, via) = through(&db.url, proxy.addr);
    let clock = ManualClock::new(Timestamp(1_800_000_000_000));
    let (server, boot) = db
        .server("a", &via, Duration::from_secs(5), Arc::new(clock.clone()))
        .await;
    let (admin_id, admin_secret) = boot.unwrap();
    let admin = client(&server, &admin_id, &admin_secret);
    let cached = admin.create_key("API", "cached").await.unwrap();
    let cold = admin.create_key("API", "not cached").await.unwrap();
    let cached_client = client(&server, &cached.key_id, &cached.key_secret);
    assert_eq!(status_of(cached_client.current_user().await), 200);

    proxy.cut();
    let probe = |id: String, secret: String| {
        let url = format!("{}/auth/verify", server.url());
        async move {
            let r = fal_client::http_client()
                .get(url)
                .header("authorization", format!("Key {id}:{secret}"))
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            let body: serde_json::Value = r.json().await.unwrap_or_default();
            (status, body)
        }
    };
    let (status, _) = probe(cached.key_id.clone(), cached.key_secret.clone()).await;
    assert_eq!(
        status, 204,
        "a cached key keeps working within the staleness bound"
    );
    let (status, body) = probe(cold.key_id.clone(), cold.key_secret.clone()).await;
    assert_eq!(
        status, 503,
        "an uncached key cannot be checked: retry, not 401"
    );
    assert_eq!(body["code"], "unavailable");
    assert!(body["detail"].is_string());
    match admin.create_key("API", "during outage").await {
        Err(ClientError::Api { status: 503, .. }) => {}
        other => panic!("key creation during the outage: {other:?}"),
    }
    clock.advance_millis(6_000);
    let (status, _) = probe(cached.key_id.clone(), cached.key_secret.clone()).await;
    assert_eq!(
        status, 503,
        "past the staleness bound the cache is not trusted"
    );

    proxy.restore();
    let back = within(Duration::from_secs(15), || async {
        probe(cached.key_id.clone(), cached.key_secret.clone())
            .await
            .0
            == 204
    })
    .await;
    assert!(back.is_some(), "the server did not recover by itself");
    assert_eq!(
        probe(cold.key_id.clone(), cold.key_secret.clone()).await.0,
        204
    );
    let listed: Vec<_> = admin
        .list_all_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert!(
        listed.contains(&cached.key_id) && listed.contains(&cold.key_id),
        "no key was lost"
    );
    server.stop().await;
    drop(proxy);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writers_on_two_servers_lose_nothing() {
    let Some(db) = Db::new("concurrent writers").await else {
        return;
    };
    let minute = Duration::from_secs(60);
    let (a, boot) = db.server("a", &db.url, minute, Arc::new(SystemClock)).await;
    let (b, _) = db.server("b", &db.url, minute, Arc::new(SystemClock)).await;
    let (admin_id, admin_secret) = boot.unwrap();
    let servers = [a.url(), b.url()];
    let mut tasks = Vec::new();
    for w in 0..8 {
        let here = servers[w % 2].clone();
        let there = servers[(w + 1) % 2].clone();
        let (id, secret) = (admin_id.clone(), admin_secret.clone());
        tasks.push(tokio::spawn(async move {
            let admin = Client::new(&here, Some(creds(&id, &secret)));
            let mut made = Vec::new();
            for i in 0..10 {
                let k = admin.create_key("API", &format!("w{w}-{i}")).await.unwrap();
                // Every created key verifies on the other server.
                let other = Client::new(&there, Some(creds(&k.key_id, &k.key_secret)));
                assert_eq!(status_of(other.current_user().await), 200);
                if i % 2 == 0 {
                    admin.revoke_key(&k.key_id).await.unwrap();
                }
                made.push((k, i % 2 == 0, there.clone()));
            }
            made
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap());
    }
    let mut ids: Vec<_> = all.iter().map(|(k, _, _)| k.key_id.clone()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 80, "no duplicate ids");
    for (k, revoked, there) in &all {
        let c = Client::new(there, Some(creds(&k.key_id, &k.key_secret)));
        let want = if *revoked { 401 } else { 200 };
        let ok = within(Duration::from_secs(2), || async {
            status_of(c.current_user().await) == want
        })
        .await;
        assert!(ok.is_some(), "key {} should answer {want}", k.key_id);
    }
    let listed = Client::new(&servers[0], Some(creds(&admin_id, &admin_secret)))
        .list_all_keys()
        .await
        .unwrap();
    // 40 unrevoked keys plus the bootstrap key.
    assert_eq!(listed.len(), 41);
    a.stop().await;
    b.stop().await;
    db.drop().await;
}
