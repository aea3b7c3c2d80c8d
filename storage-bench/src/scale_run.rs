//! The scale run as a whole (`storage-bench --scale [--smoke]`): every backend's curves
//! (`scale.rs`), the in-process stores' bytes per key against a raw map and moka, each
//! server's bulk-load limit and `storage migrate` between each pair, Redis at one task on both
//! of tokio's runtimes (`redis_runtime.rs`) and the redb plugin against the same crate linked
//! in (`plugin_path.rs`), what each layer over the in-memory store costs (`layer_cost.rs`); all
//! written to `scale.json`, with the curves' verdicts in `scale.md`
//! (`scale_report.rs`), and drawn as SVGs (`scale_plot.rs`). Not the default benchmark
//! (`main.rs`).

use crate::scale::{self, Backend, FULL, SMOKE, Sizes};
use crate::scale_footprint::{self as footprint, Footprint};
use crate::scale_migrate::{self as migrate, Endpoint};
use crate::scale_raw::{BulkLimit, Raw};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

/// Handles `--footprint-probe`, `--only-redis-one-task`, `--only-in-memory-layers`,
/// `--only-plugin-path` and `--scale`; false when `args` asks for none.
pub async fn main(args: &[String]) -> bool {
    let value_of = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    if let Some(i) = args.iter().position(|a| a == "--footprint-probe") {
        let keys = args
            .get(i + 2)
            .and_then(|n| n.parse().ok())
            .expect("a key count");
        footprint::probe_main(&args[i + 1], keys).await;
        return true;
    }
    if let (true, Some(url)) = (
        args.iter().any(|a| a == "--only-redis-one-task"),
        value_of("--redis"),
    ) {
        // Redis at one task alone, in a minute: for checking a change to the client's path.
        let rows = crate::redis_runtime::compare(&url, 4_000, true).await;
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows as JSON")
        );
        return true;
    }
    if args.iter().any(|a| a == "--only-in-memory-layers") {
        // What each layer over the in-memory store costs, alone: for checking a change to them.
        let rows = crate::layer_cost::compare(2_000).await;
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows as JSON")
        );
        return true;
    }
    if let Some(plugin) = value_of("--only-plugin-path") {
        // The redb plugin against the same crate linked in, alone: for checking a change to
        // the plugin boundary or the layers.
        let dir = std::env::temp_dir().join(format!("storage-bench-plugin-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        // The config that loads it is read in the scratch directory: an absolute path.
        let plugin = std::fs::canonicalize(&plugin).expect("the plugin library");
        let rows = crate::plugin_path::compare(&plugin, &dir, 2_000).await;
        let _ = std::fs::remove_dir_all(&dir);
        println!(
            "{}",
            serde_json::to_string_pretty(&rows).expect("rows as JSON")
        );
        return true;
    }
    if !args.iter().any(|a| a == "--scale") {
        return false;
    }
    let plots = value_of("--plots").unwrap_or_else(|| "docs/bench".into());
    let out = PathBuf::from(value_of("--out").unwrap_or_else(|| "target/bench/scale.json".into()));
    let caption = value_of("--caption").unwrap_or_else(|| "this machine".into());
    let smoke = args.iter().any(|a| a == "--smoke");
    let (pg, redis) = (value_of("--postgres"), value_of("--redis"));
    let redb_plugin = value_of("--redb-plugin").map(PathBuf::from);
    let no_curves = args.iter().any(|a| a == "--no-curves");
    let only = value_of("--only");
    let max_size = value_of("--max-size").and_then(|n| n.parse::<usize>().ok());
    all(
        smoke,
        no_curves,
        Picked { only, max_size },
        pg,
        redis,
        redb_plugin,
        &out,
        plots.as_ref(),
        &caption,
    )
    .await;
    true
}

/// Every backend given (in-memory and SQLite always): their curves in `out` (`scale.json`)
/// and drawn into `plots`, captioned `caption` (the machine, the date, the commit). With
/// `no_curves`, all but the backends' curves (the footprint probes, bulk loads, migrations,
/// the plugin path and Redis at one task).
#[allow(clippy::too_many_arguments)]
pub async fn all(
    smoke: bool,
    no_curves: bool,
    picked: Picked,
    postgres: Option<String>,
    redis: Option<String>,
    redb_plugin: Option<PathBuf>,
    out: &Path,
    plots: &Path,
    caption: &str,
) {
    let base = if smoke { SMOKE } else { FULL };
    let cap = |sizes: &'static [usize]| -> &'static [usize] {
        match picked.max_size {
            Some(max) => Vec::leak(sizes.iter().copied().filter(|&n| n <= max).collect()),
            None => sizes,
        }
    };
    let sizes = &Sizes {
        namespace: cap(base.namespace),
        list: cap(base.list),
        ..base
    };
    let dir = std::env::temp_dir().join(format!("storage-bench-scale-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    let sqlite_path = dir.join("scale.db");
    let sqlite_block = scale::block(json!({"type": "sqlite", "path": sqlite_path}));
    // The project opens (and makes) the file before its raw driver does.
    crate::open(&format!(
        "database: {sqlite_block}\ncache: {{ type: in-memory }}"
    ))
    .await;
    let mut backends = vec![
        Backend {
            name: "in-memory",
            block: scale::block(json!({"type": "in-memory", "store": "scale"})),
            raw: Arc::new(Raw::memory()),
            footprint: Footprint::InProcess,
        },
        Backend {
            name: "sqlite",
            block: sqlite_block.clone(),
            raw: Arc::new(Raw::sqlite(&sqlite_path)),
            footprint: Footprint::Sqlite(sqlite_path.clone()),
        },
    ];
    let mut endpoints = vec![Endpoint {
        name: "sqlite",
        block: scale::block(json!({"type": "sqlite", "path": dir.join("migrate.db")})),
        limit: None,
    }];
    let mut loads = vec![BulkLimit::Sqlite(&dir)];
    for (name, url) in [("postgresql", &postgres), ("redis", &redis)] {
        let Some(url) = url else { continue };
        // A `clear` of a 10M-key namespace is one statement that runs past the default
        // 10 s operation timeout; the run allows it 10 minutes.
        let block = scale::block(json!({
            "type": name, "url": url, "maxConnections": 64, "operationTimeoutMillis": 600_000,
        }));
        let (raw, footprint, load) = if name == "postgresql" {
            // The project makes its tables before the raw driver prepares statements on them.
            crate::open(&format!("database: {block}\ncache: {{ type: in-memory }}")).await;
            let raw = Raw::postgres(url).await;
            (
                raw,
                Footprint::Postgres(url.clone()),
                BulkLimit::Postgres(url),
            )
        } else {
            let raw = Raw::redis(url).await;
            (raw, Footprint::Redis(url.clone()), BulkLimit::Redis(url))
        };
        backends.push(Backend {
            name,
            block: block.clone(),
            raw: Arc::new(raw),
            footprint,
        });
        endpoints.push(Endpoint {
            name,
            block,
            limit: None,
        });
        loads.push(load);
    }

    // PostgreSQL, durable and the slowest to fill, last.
    backends.sort_by_key(|b| b.name == "postgresql");
    // The quick parts first, and the results written after each part: a run cut short
    // still leaves what it measured.
    let mut run = Results::new(caption);
    let started = Instant::now();
    if let Some(name) = &picked.only {
        // One backend's curves alone (a rerun of one line of the plots).
        backends.retain(|b| b.name == name);
        for b in &backends {
            let measured = scale::backend(b, sizes).await;
            run.add(b.name, measured);
        }
        run.write(out, plots);
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let part = Instant::now();
    let probe_keys = sizes.migrate;
    for kind in footprint::PROBES {
        let bytes = footprint::memory_probe(kind, probe_keys).expect("a footprint probe");
        eprintln!(
            "scale: {kind:<10} footprint   {probe_keys:>8} keys: {bytes:.0} B/key (resident)"
        );
        run.footprint
            .push(json!({"backend": kind, "keys": probe_keys, "bytes_per_key": bytes}));
    }
    run.took("footprint probes", part);
    let part = Instant::now();
    let value = scale::value_of(200);
    migrate::limits(&mut endpoints, &loads, sizes.migrate, &value).await;
    for end in &endpoints {
        if let Some(limit) = end.limit {
            run.footprint.push(json!({
                "backend": format!("{} (raw bulk load)", end.name),
                "keys": sizes.migrate, "bytes_per_key": limit.bytes_per_key,
            }));
            run.limits.push(json!({
                "backend": end.name, "keys": sizes.migrate, "keys_per_sec": limit.keys_per_sec,
            }));
        }
    }
    run.migrate = migrate::pairs(&endpoints, &dir, sizes.migrate, &value).await;
    run.took("bulk loads and migrate", part);
    let part = Instant::now();
    if let Some(plugin) = &redb_plugin {
        run.plugin_path = crate::plugin_path::compare(plugin, &dir, sizes.ops).await;
    }
    if let Some(url) = &redis {
        run.redis_one_task = crate::redis_runtime::compare(url, sizes.ops * 2, !smoke).await;
    }
    run.layer_cost = crate::layer_cost::compare(sizes.ops).await;
    run.took("plugin path, Redis at one task, in-memory layers", part);
    run.write(out, plots);
    if no_curves {
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    for b in &backends {
        let part = Instant::now();
        let measured = scale::backend(b, sizes).await;
        run.add(b.name, measured);
        run.took(&format!("{} curves", b.name), part);
        run.write(out, plots);
    }
    run.took("the whole run", started);
    run.write(out, plots);
    let _ = std::fs::remove_dir_all(&dir);
    println!("scale: {}", out.display());
}

/// What the run measured so far.
struct Results {
    caption: String,
    curves: Vec<scale::Curve>,
    footprint: Vec<Value>,
    limits: Vec<Value>,
    migrate: Vec<Value>,
    stopped: Vec<String>,
    fsyncs: Vec<Value>,
    redis_one_task: Vec<Value>,
    plugin_path: Vec<Value>,
    layer_cost: Vec<Value>,
    /// (part of the run, seconds it took).
    seconds: Vec<Value>,
}

/// Which backends, and up to what size, a run measures (`--only`, `--max-size`).
pub struct Picked {
    pub only: Option<String>,
    pub max_size: Option<usize>,
}

impl Results {
    fn took(&mut self, part: &str, since: Instant) {
        let secs = since.elapsed().as_secs_f64();
        eprintln!("scale: {part} took {:.1} min", secs / 60.0);
        self.seconds
            .push(json!({"part": part, "seconds": secs.round()}));
    }

    fn add(&mut self, name: &str, measured: scale::Measured) {
        self.curves.extend(measured.curves);
        self.stopped.extend(measured.stopped);
        for (tasks, per_set) in measured.fsyncs {
            self.fsyncs
                .push(json!({"backend": name, "tasks": tasks, "fsyncs_per_set": per_set}));
        }
        for (keys, bytes) in measured.footprint {
            self.footprint
                .push(json!({"backend": name, "keys": keys, "bytes_per_key": bytes}));
        }
    }

    fn new(caption: &str) -> Results {
        Results {
            caption: caption.to_string(),
            curves: Vec::new(),
            footprint: Vec::new(),
            limits: Vec::new(),
            migrate: Vec::new(),
            stopped: Vec::new(),
            fsyncs: Vec::new(),
            redis_one_task: Vec::new(),
            plugin_path: Vec::new(),
            layer_cost: Vec::new(),
            seconds: Vec::new(),
        }
    }

    /// `scale.json` at `out`, and the curves drawn into `plots`.
    fn write(&self, out: &Path, plots: &Path) {
        if let Some(parent) = out.parent() {
            std::fs::create_dir_all(parent).expect("the results directory");
        }
        let json = json!({
            "caption": self.caption,
            "curves": self.curves.iter().map(scale::Curve::json).collect::<Vec<_>>(),
            "footprint": self.footprint,
            "bulk_load_limits": self.limits,
            "migrate": self.migrate,
            "stopped": self.stopped,
            "fsyncs": self.fsyncs,
            "redis_one_task": self.redis_one_task,
            "redb_plugin_against_linked": self.plugin_path,
            "in_memory_layers": self.layer_cost,
            "seconds": self.seconds,
        });
        std::fs::write(out, serde_json::to_string_pretty(&json).expect("json"))
            .expect("write scale.json");
        std::fs::write(
            out.with_extension("md"),
            crate::scale_report::markdown(&self.curves),
        )
        .expect("write scale.md");
        match crate::scale_plot::draw(&self.curves, plots, &self.caption) {
            Ok(files) => eprintln!(
                "scale: {} curves, {} plots in {}",
                self.curves.len(),
                files.len(),
                plots.display()
            ),
            Err(e) => panic!("drawing the curves: {e}"),
        }
    }
}
