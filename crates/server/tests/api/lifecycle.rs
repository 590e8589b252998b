//! Restarts, the pepper, cache staleness, key use and recovery.

use std::sync::Arc;
use std::time::Duration;

use fal_core::{KeyId, ManualClock, OsRandom, SystemClock, Timestamp};
use fal_server::App;
use fal_server::app::{StartError, recover_admin_key};
use fal_store::KeyAdmin;

use crate::helpers::{config, spawn_app, spawn_app_with};

#[tokio::test]
async fn keys_survive_a_restart_and_the_bootstrap_key_is_not_made_twice() {
    let mut app = spawn_app().await;
    let k = app.admin().create_key("API", "kept").await.unwrap();
    app.stop().await;

    let mut again = App::build(
        config(app.dir.path()),
        Arc::new(SystemClock),
        Arc::new(OsRandom),
    )
    .await
    .unwrap();
    assert!(
        again.take_bootstrap_key().is_none(),
        "a later start prints no secret"
    );
    let server = again.spawn().await.unwrap();
    let url = server.url();
    let client =
        fal_client::Client::new(&url, Some(crate::helpers::creds(&k.key_id, &k.key_secret)));
    assert_eq!(client.current_user().await.unwrap().credential.scope, "API");
    let admin = fal_client::Client::new(
        &url,
        Some(crate::helpers::creds(&app.admin_id, &app.admin_secret)),
    );
    assert_eq!(admin.list_all_keys().await.unwrap().len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_different_pepper_is_refused_at_start() {
    let mut app = spawn_app().await;
    app.stop().await;
    let mut cfg = config(app.dir.path());
    cfg.pepper_file = Some(app.dir.path().join("another-pepper"));
    let err = App::build(cfg, Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .err()
        .expect("must refuse");
    assert!(matches!(err, StartError::PepperMismatch { .. }), "{err}");
    assert!(err.to_string().contains("--pepper-file"));
}

#[tokio::test]
async fn last_used_at_is_recorded_without_a_write_per_request() {
    let app = spawn_app().await;
    let admin = app.admin();
    let k = admin.create_key("API", "").await.unwrap();
    let before = admin.list_all_keys().await.unwrap();
    let row = before.iter().find(|x| x.key_id == k.key_id).unwrap();
    assert_eq!(row.last_used_at, None);
    let user = app.client(&k.key_id, &k.key_secret);
    for _ in 0..5 {
        user.current_user().await.unwrap();
    }
    // Written back by the periodic flush (every 50 ms in tests).
    let mut seen = None;
    for _ in 0..100 {
        let keys = admin.list_all_keys().await.unwrap();
        seen = keys
            .into_iter()
            .find(|x| x.key_id == k.key_id)
            .unwrap()
            .last_used_at;
        if seen.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen.is_some(), "last_used_at was never recorded");
}

#[tokio::test]
async fn a_cached_record_is_trusted_only_within_the_staleness_bound() {
    // Another process revokes the key in the shared database, behind this
    // server's back: the cached record may be used until it is too old.
    let clock = ManualClock::new(Timestamp(1_800_000_000_000));
    let app = spawn_app_with(
        |c| c.max_staleness = Duration::from_secs(5),
        Arc::new(clock.clone()),
    )
    .await;
    let k = app.admin().create_key("API", "").await.unwrap();
    let user = app.client(&k.key_id, &k.key_secret);
    user.current_user().await.unwrap();

    let store = app.store().await;
    let owner = fal_store::KeyLookup::key_record(&store, &k.key_id.parse::<KeyId>().unwrap())
        .await
        .unwrap()
        .unwrap()
        .user_id;
    assert!(
        store
            .revoke_key(&owner, &k.key_id.parse().unwrap(), Timestamp(1))
            .await
            .unwrap()
    );
    store.close().await;

    clock.advance_millis(4_000);
    assert!(
        user.current_user().await.is_ok(),
        "within the bound the cache answers"
    );
    clock.advance_millis(2_000);
    assert!(
        user.current_user().await.is_err(),
        "past the bound the revocation is seen"
    );
}

#[tokio::test]
async fn a_lost_bootstrap_key_is_recovered_offline() {
    let mut app = spawn_app().await;
    app.stop().await;
    let cfg = config(app.dir.path());
    let key = recover_admin_key(&cfg, &SystemClock, &OsRandom)
        .await
        .unwrap();
    let mut again = App::build(cfg, Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .unwrap();
    assert!(again.take_bootstrap_key().is_none());
    let server = again.spawn().await.unwrap();
    let client = fal_client::Client::new(
        &server.url(),
        Some(crate::helpers::creds(
            &key.key_id.to_string(),
            key.secret.expose(),
        )),
    );
    let me = client.current_user().await.unwrap();
    assert_eq!(me.nickname, "admin");
    assert_eq!(me.credential.scope, "ADMIN");
    server.stop().await;

    // Recovery on an empty directory explains itself instead of creating anything.
    let empty = tempfile::tempdir().unwrap();
    let err = recover_admin_key(&config(empty.path()), &SystemClock, &OsRandom)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("no fal data"), "{err}");
    assert_eq!(std::fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[cfg(unix)]
#[tokio::test]
async fn a_fresh_data_directory_is_0700_with_the_database_and_pepper_0600() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh/data");
    let mut app = App::build(config(&data), Arc::new(SystemClock), Arc::new(OsRandom))
        .await
        .unwrap();
    assert!(app.take_bootstrap_key().is_some());
    // Looked at while the server runs, when the WAL files exist.
    let server = app.spawn().await.unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&data), 0o700, "data directory");
    let mut seen = Vec::new();
    for entry in std::fs::read_dir(&data).unwrap() {
        let path = entry.unwrap().path();
        seen.push(path.file_name().unwrap().to_string_lossy().into_owned());
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert!(seen.iter().any(|n| n == "fal.db"), "{seen:?}");
    assert!(seen.iter().any(|n| n == "pepper"), "{seen:?}");
    assert!(seen.iter().any(|n| n == "fal.db-wal"), "{seen:?}");
    server.stop().await;
}
