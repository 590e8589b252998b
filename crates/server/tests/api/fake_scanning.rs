//! A fake of GitHub's secret scanning key list, and a signer holding the
//! private half of a P-256 key it publishes (generated per test with ring).
//! Shared with the CLI tests.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use base64::Engine as _;
use fal_server::secret_scanning::keys::p256_spki_der;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_ASN1_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

/// A P-256 signing key, as GitHub holds one.
pub struct Signer {
    pub id: String,
    pair: EcdsaKeyPair,
}

impl Signer {
    pub fn new(id: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        Signer {
            id: id.into(),
            pair,
        }
    }

    /// The public key as GitHub publishes it: a PEM `PUBLIC KEY` block.
    pub fn pem(&self) -> String {
        let der = p256_spki_der(self.pair.public_key().as_ref());
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
            lines.join("\n")
        )
    }

    /// The base64 DER signature over `body`.
    pub fn sign(&self, body: &[u8]) -> String {
        let sig = self.pair.sign(&SystemRandom::new(), body).unwrap();
        base64::engine::general_purpose::STANDARD.encode(sig.as_ref())
    }
}

#[derive(Clone)]
pub struct KeyServer {
    pub url: String,
    keys: Arc<Mutex<Vec<(String, String)>>>,
    down: Arc<Mutex<bool>>,
    pub fetches: Arc<AtomicUsize>,
}

async fn serve_keys(State(k): State<KeyServer>) -> Result<axum::Json<Value>, StatusCode> {
    k.fetches.fetch_add(1, Ordering::SeqCst);
    if *k.down.lock().unwrap() {
        return Err(StatusCode::SERVICE_UNAVAILABLE);
    }
    let keys: Vec<Value> = k
        .keys
        .lock()
        .unwrap()
        .iter()
        .map(|(id, pem)| json!({"key_identifier": id, "key": pem, "is_current": true}))
        .collect();
    Ok(axum::Json(json!({ "public_keys": keys })))
}

impl KeyServer {
    /// A fake of GitHub's key list, publishing `signers`, on its own thread.
    pub fn start(signers: &[&Signer]) -> KeyServer {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let server = KeyServer {
            url: format!(
                "http://{}/meta/public_keys/secret_scanning",
                listener.local_addr().unwrap()
            ),
            keys: Arc::new(Mutex::new(
                signers.iter().map(|s| (s.id.clone(), s.pem())).collect(),
            )),
            down: Arc::new(Mutex::new(false)),
            fetches: Arc::new(AtomicUsize::new(0)),
        };
        let app = Router::new()
            .route("/meta/public_keys/secret_scanning", get(serve_keys))
            .with_state(server.clone());
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
        server
    }

    pub fn set_down(&self, down: bool) {
        *self.down.lock().unwrap() = down;
    }

    pub fn fetched(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }
}
