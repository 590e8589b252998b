//! Dashboard cookies under TLS carry `Secure` and the `__Host-` prefix; a
//! valid form from one user cannot revoke another user's key.

use std::path::Path;
use std::process::Command;

use crate::certs::certificates;
use crate::harness::Server;

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-s", "-i"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "curl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn hidden_csrf(html: &str) -> String {
    let at =
        html.find("name=\"csrf\" value=\"").expect("a CSRF field") + "name=\"csrf\" value=\"".len();
    html[at..].split('"').next().unwrap().to_owned()
}

fn set_cookies(resp: &str) -> Vec<String> {
    resp.lines()
        .filter_map(|l| {
            l.strip_prefix("set-cookie: ")
                .or_else(|| l.strip_prefix("Set-Cookie: "))
        })
        .map(|l| l.trim().to_owned())
        .collect()
}

/// Signs in with a key through the dashboard form; returns the cookie jar path.
fn dashboard_sign_in(
    base: &str,
    jar: &Path,
    ca: Option<&str>,
    id: &str,
    secret: &str,
) -> Vec<String> {
    let jar_s = jar.display().to_string();
    let mut common: Vec<&str> = vec!["-c", &jar_s, "-b", &jar_s];
    if let Some(ca) = ca {
        common.extend(["--cacert", ca]);
    }
    let login_url = format!("{base}/dashboard/login");
    let page = curl(&[common.as_slice(), &[login_url.as_str()]].concat());
    let csrf = hidden_csrf(&page);
    let form = format!("csrf={csrf}&key_id={id}&key_secret={secret}");
    let resp = curl(&[common.as_slice(), &["--data", &form, &login_url]].concat());
    assert!(resp.starts_with("HTTP/1.1 303"), "{resp}");
    set_cookies(&resp)
}

#[test]
fn dashboard_cookies_are_secure_under_tls() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificates(dir.path());
    let s = Server::start_with(
        &dir.path().join("data"),
        None,
        &["--tls-cert", &cert, "--tls-key", &key],
        &[("SSL_CERT_FILE", &ca)],
    );
    let admin = s.bootstrap();
    let jar = dir.path().join("jar");
    let cookies = dashboard_sign_in(&s.url, &jar, Some(&ca), &admin.id, &admin.secret);
    // A sibling subdomain or another port cannot plant a `__Host-` cookie.
    assert!(
        !cookies.iter().any(|c| c.starts_with("fal_")),
        "an unprefixed cookie under TLS: {cookies:?}"
    );
    let session = cookies
        .iter()
        .find(|c| c.starts_with("__Host-fal_session="))
        .expect("a __Host- session cookie");
    let cleared_csrf = cookies
        .iter()
        .find(|c| c.starts_with("__Host-fal_csrf="))
        .expect("the login CSRF cookie cleared under its __Host- name");
    for c in [session, cleared_csrf] {
        for attr in ["HttpOnly", "SameSite=Lax", "Secure", "Path=/"] {
            assert!(c.contains(attr), "{c} lacks {attr}");
        }
        assert!(!c.contains("Domain"), "{c}");
    }
    // The browser sends it back under that name, and the server reads it.
    let jar_s = jar.display().to_string();
    let keys = curl(&[
        "--cacert",
        &ca,
        "-b",
        &jar_s,
        &format!("{}/dashboard/keys", s.url),
    ]);
    assert!(keys.starts_with("HTTP/1.1 200"), "{keys}");
    // A bare `fal_session` (what a plain-HTTP sibling could plant) is not read.
    let token = session
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1;
    let planted = curl(&[
        "--cacert",
        &ca,
        "-b",
        &format!("fal_session={token}"),
        &format!("{}/dashboard/keys", s.url),
    ]);
    assert!(planted.starts_with("HTTP/1.1 303"), "{planted}");
    s.stop();
}

#[test]
fn the_one_time_link_never_reaches_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), Some("trace"));
    let admin = s.bootstrap();
    let jar = dir.path().join("jar");
    dashboard_sign_in(&s.url, &jar, None, &admin.id, &admin.secret);
    let jar_s = jar.display().to_string();
    let keys = format!("{}/dashboard/keys", s.url);
    let csrf = hidden_csrf(&curl(&["-b", &jar_s, &keys]));
    let made = curl(&[
        "-b",
        &jar_s,
        "--data",
        &format!("csrf={csrf}&scope=API&alias=x"),
        &keys,
    ]);
    let link = made
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("location: ")
                .map(|_| l[10..].trim().to_owned())
        })
        .expect("a redirect to the one-time link");
    let id = link
        .strip_prefix("/dashboard/keys/created/")
        .expect("the one-time link")
        .to_owned();
    let shown = curl(&["-b", &jar_s, &format!("{}{link}", s.url)]);
    assert!(shown.contains("fal_sk_"), "{shown}");
    let log = s.stop();
    assert!(
        log.contains("/dashboard/keys/created/"),
        "the request is logged, without its id"
    );
    assert!(!log.contains(&id), "the one-time link's id reached the log");
    // Durations are rounded (`ms=0.49`, never `ms=0.48783000000000004`).
    let durations: Vec<&str> = log
        .split("ms=")
        .skip(1)
        .map(|rest| rest.split_whitespace().next().unwrap_or(""))
        .collect();
    assert!(!durations.is_empty(), "no request line in {log}");
    for d in durations {
        let decimals = d.split_once('.').map_or(0, |(_, frac)| frac.len());
        assert!(decimals <= 2, "an unrounded duration: ms={d}");
    }
}

#[test]
fn a_valid_form_cannot_revoke_another_users_key() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(&dir.path().join("data"), None);
    let admin = s.bootstrap();
    // The API cannot create users (GitHub sign-in does); add one straight
    // into the database, as a second process would.
    let victim =
        crate::harness::parse_pair(&s.ok(&admin, &["key", "generate", "--scope", "API"])).unwrap();
    let mallory = crate::harness::user_with_admin_key(&dir.path().join("data"), "mallory", None);
    let jar = dir.path().join("jar");
    dashboard_sign_in(&s.url, &jar, None, &mallory.id, &mallory.secret);
    let jar_s = jar.display().to_string();
    let keys_page = curl(&["-b", &jar_s, &format!("{}/dashboard/keys", s.url)]);
    let csrf = hidden_csrf(&keys_page);
    let resp = curl(&[
        "-b",
        &jar_s,
        "--data",
        &format!("csrf={csrf}"),
        &format!("{}/dashboard/keys/{}/revoke", s.url, victim.id),
    ]);
    assert!(resp.starts_with("HTTP/1.1 404"), "{resp}");
    s.ok(&victim, &["auth", "whoami"]);
    s.stop();
}
