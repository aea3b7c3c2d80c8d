//! `storage demo`, part 6: two instances of an application sharing the cache and the database,
//! each with a near cache in front of the database; prints each level's hit rate and how soon
//! one instance saw the other's write. (In one process here; across processes it works the
//! same, through the database's change log.)

use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};
use storage_core::{Cache, Database, Result, Store};
use storage_manager::{CacheAside, CacheAsideOptions, NearCache, NearCacheOptions};

/// Runs the two instances over `cache` and `db` and prints what they saw.
pub async fn run(cache: Arc<dyn Cache>, db: Arc<dyn Database>) -> Result<()> {
    println!("\ntwo instances sharing the cache and the database:");
    let near_a = NearCache::database(db.clone(), NearCacheOptions::default());
    let near_b = NearCache::database(db.clone(), NearCacheOptions::default());
    let settle = Instant::now() + Duration::from_secs(2);
    while !(near_a.in_sync() && near_b.in_sync()) && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if !near_a.in_sync() {
        println!("  this database keeps no change log: the near caches read through");
    }
    let options = CacheAsideOptions::default();
    let shared_a = CacheAside::new(cache.clone(), db.clone(), options.clone());
    let shared_b = CacheAside::new(cache, db.clone(), options);
    for i in 0..5 {
        near_a
            .set(&format!("profile:{i}"), &json!({ "plan": "free", "n": i }))
            .await?;
    }
    for _ in 0..4 {
        for i in 0..5 {
            let key = format!("profile:{i}");
            near_a.get(&key).await?;
            near_b.get(&key).await?;
            shared_a.get(&key).await?;
            shared_b.get(&key).await?;
        }
    }
    // A writes; B's near cache drops the key when the change arrives, and reads the new value.
    let written = Instant::now();
    near_a
        .set("profile:0", &json!({ "plan": "pro", "n": 0 }))
        .await?;
    let mut seen = None;
    while written.elapsed() < Duration::from_secs(2) {
        if near_b
            .get("profile:0")
            .await?
            .and_then(|v| v.get("plan").cloned())
            == Some(json!("pro"))
        {
            seen = Some(written.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_micros(500)).await;
    }
    for (name, near, shared) in [("A", &near_a, &shared_a), ("B", &near_b, &shared_b)] {
        let n = near.stats();
        let s = shared.stats();
        let rate = |hits: u64, total: u64| {
            if total == 0 {
                0.0
            } else {
                hits as f64 * 100.0 / total as f64
            }
        };
        println!(
            "  instance {name}: near cache {:.0}% hits ({} of {}), shared cache {:.0}% hits ({} of {})",
            rate(n.hits, n.hits + n.misses + n.bypassed),
            n.hits,
            n.hits + n.misses + n.bypassed,
            s.hit_rate() * 100.0,
            s.hits,
            s.hits + s.misses
        );
    }
    match seen {
        Some(after) => {
            println!("  B's near cache saw A's write {after:.1?} after it was acknowledged")
        }
        None => println!("  B did not see A's write within 2 s"),
    }
    shared_a.shutdown(Duration::from_secs(1)).await;
    shared_b.shutdown(Duration::from_secs(1)).await;
    for i in 0..5 {
        db.delete(&format!("profile:{i}")).await?;
    }
    Ok(())
}
