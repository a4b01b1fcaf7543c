//! The same API tests as `api.rs`, on PostgreSQL: each test gets a fresh
//! database in the server that `WEBLAB_APP_PG_URL` names
//! (`postgres://user@127.0.0.1:PORT/postgres`; `.ci/run` starts one).
//! Without it they are skipped, unless `WEBLAB_REQUIRE_INTEROP` is set.

#[path = "api.rs"]
mod api;

use std::sync::atomic::{AtomicU32, Ordering};

/// A new, empty database on the PostgreSQL server, as a URL.
pub async fn database_url() -> Option<String> {
    let Ok(admin) = std::env::var("WEBLAB_APP_PG_URL") else {
        assert!(
            std::env::var_os("WEBLAB_REQUIRE_INTEROP").is_none(),
            "WEBLAB_APP_PG_URL is not set: no PostgreSQL to test against"
        );
        return None;
    };
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let name = format!(
        "weblab_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    sqlx::any::install_default_drivers();
    let mut conn = <sqlx::AnyConnection as sqlx::Connection>::connect(&admin)
        .await
        .expect("the PostgreSQL server answers");
    sqlx::Executor::execute(
        &mut conn,
        sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
    )
    .await
    .unwrap();
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    Some(format!("{base}/{name}"))
}
