//! A fake GitHub for tests: device flow (with a script of answers), web-flow
//! code exchange checking PKCE, `/user` and `/user/orgs`. Runs on its own
//! thread and runtime, so both async and plain tests can use it.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const CLIENT_ID: &str = "test-client-id";
pub const CLIENT_SECRET: &str = "test-client-secret";
/// The one device code this GitHub issues.
pub const DEVICE_CODE: &str = "device-123";
pub const GITHUB_TOKEN: &str = "gho_faketoken0123456789abcdefghijklmnop";

pub struct FakeState {
    /// id, login, name of the user GitHub reports.
    pub user: (i64, String, String),
    /// Organisations the user belongs to.
    pub orgs: Vec<String>,
    /// One entry used per device poll: pending, slow_down, expired, denied, ok.
    pub script: VecDeque<&'static str>,
    /// When each device poll arrived.
    pub polls: Vec<Instant>,
    /// Web-flow codes and the PKCE challenge each was issued for.
    pub codes: HashMap<String, String>,
    /// The API answers 503 (GitHub down).
    pub down: bool,
    /// The API refuses the user's token (401), as after the user revokes
    /// the OAuth app.
    pub token_revoked: bool,
    /// The `redirect_uri` of every web-flow code exchange.
    pub redirect_uris: Vec<String>,
}

#[derive(Clone)]
pub struct FakeGithub {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
}

async fn device_code(
    State(f): State<FakeGithub>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    assert_eq!(form.get("client_id").map(String::as_str), Some(CLIENT_ID));
    Json(json!({
        "device_code": DEVICE_CODE,
        "user_code": "ABCD-1234",
        "verification_uri": format!("{}/login/device", f.url),
        "expires_in": 900,
        "interval": 1,
    }))
}

async fn token(
    State(f): State<FakeGithub>,
    Form(form): Form<HashMap<String, String>>,
) -> Json<Value> {
    let mut s = f.state.lock().unwrap();
    if form.get("grant_type").map(String::as_str)
        == Some("urn:ietf:params:oauth:grant-type:device_code")
    {
        s.polls.push(Instant::now());
        // As GitHub: a code it never issued.
        if form.get("device_code").map(String::as_str) != Some(DEVICE_CODE) {
            return Json(json!({
                "error": "incorrect_device_code",
                "error_description": "The device_code provided is not valid.",
            }));
        }
        let step = s.script.pop_front().unwrap_or("ok");
        return Json(match step {
            "pending" => json!({"error": "authorization_pending"}),
            "slow_down" => json!({"error": "slow_down", "interval": 2}),
            "expired" => json!({"error": "expired_token"}),
            "denied" => json!({"error": "access_denied"}),
            _ => {
                json!({"access_token": GITHUB_TOKEN, "token_type": "bearer", "scope": "read:user,read:org"})
            }
        });
    }
    s.redirect_uris
        .push(form.get("redirect_uri").cloned().unwrap_or_default());
    let code = form.get("code").cloned().unwrap_or_default();
    let verifier = form.get("code_verifier").cloned().unwrap_or_default();
    let ok_secret = form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
    let ok_pkce = s.codes.get(&code).is_some_and(|challenge| {
        *challenge == fal_server::api::github::b64url(&Sha256::digest(verifier.as_bytes()))
    });
    if ok_secret && ok_pkce {
        s.codes.remove(&code);
        Json(json!({"access_token": GITHUB_TOKEN, "token_type": "bearer"}))
    } else {
        Json(json!({"error": "bad_verification_code"}))
    }
}

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(&format!("Bearer {GITHUB_TOKEN}"))
}

/// The status the API answers instead, when down or the token is refused.
fn refusal(s: &FakeState) -> Option<axum::http::StatusCode> {
    if s.down {
        Some(axum::http::StatusCode::SERVICE_UNAVAILABLE)
    } else if s.token_revoked {
        Some(axum::http::StatusCode::UNAUTHORIZED)
    } else {
        None
    }
}

async fn user(
    State(f): State<FakeGithub>,
    h: HeaderMap,
) -> Result<Json<Value>, axum::http::StatusCode> {
    assert!(authorized(&h), "GitHub API called without the user's token");
    let s = f.state.lock().unwrap();
    if let Some(status) = refusal(&s) {
        return Err(status);
    }
    Ok(Json(
        json!({"id": s.user.0, "login": s.user.1, "name": s.user.2}),
    ))
}

async fn orgs(
    State(f): State<FakeGithub>,
    h: HeaderMap,
) -> Result<Json<Value>, axum::http::StatusCode> {
    assert!(authorized(&h));
    let s = f.state.lock().unwrap();
    if let Some(status) = refusal(&s) {
        return Err(status);
    }
    Ok(Json(Value::Array(
        s.orgs.iter().map(|o| json!({"login": o})).collect(),
    )))
}

impl FakeGithub {
    /// Starts on a loopback port, on a thread of its own.
    pub fn start() -> FakeGithub {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let fake = FakeGithub {
            url,
            state: Arc::new(Mutex::new(FakeState {
                user: (583231, "octocat".into(), "The Octocat".into()),
                orgs: vec![],
                script: VecDeque::new(),
                polls: vec![],
                codes: HashMap::new(),
                down: false,
                token_revoked: false,
                redirect_uris: vec![],
            })),
        };
        let app = Router::new()
            .route("/login/device/code", post(device_code))
            .route("/login/oauth/access_token", post(token))
            .route("/user", get(user))
            .route("/user/orgs", get(orgs))
            .with_state(fake.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        fake
    }

    pub fn set_user(&self, id: i64, login: &str, name: &str) {
        self.state.lock().unwrap().user = (id, login.into(), name.into());
    }

    pub fn set_orgs(&self, orgs: &[&str]) {
        self.state.lock().unwrap().orgs = orgs.iter().map(|o| o.to_string()).collect();
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    pub fn script(&self, steps: &[&'static str]) {
        self.state.lock().unwrap().script = steps.iter().copied().collect();
    }

    pub fn polls(&self) -> Vec<Instant> {
        self.state.lock().unwrap().polls.clone()
    }

    /// As GitHub would after the user approves the web flow: a code bound
    /// to the PKCE challenge the authorize URL carried.
    pub fn issue_code(&self, code: &str, challenge: &str) {
        self.state
            .lock()
            .unwrap()
            .codes
            .insert(code.into(), challenge.into());
    }
}
