//! The cases, and what they share.

mod cache;
pub(crate) mod conditional;
mod conditional_model;
mod contract;
mod database;
mod keys;
mod listing;
mod operations;
mod sequences;
mod tail;
mod values;
mod watch;

use crate::check::{CaseResult, Ctx};
use crate::{BoxFuture, CacheBuilder, DatabaseBuilder};
use serde_json::Value;
use std::sync::Arc;
use storage_core::{Cache, CacheEntry, Database, Result, Store};

/// One named case.
pub(crate) struct Case {
    pub name: &'static str,
    pub run: fn(Cx) -> BoxFuture<'static, CaseResult>,
}

/// Lists cases by function name.
macro_rules! cases {
    ($($module:ident :: $name:ident),* $(,)?) => {
        vec![$(Case {
            name: stringify!($name),
            run: |cx| Box::pin($module::$name(cx)),
        }),*]
    };
}

pub(crate) fn cache_cases() -> Vec<Case> {
    let mut all = common_cases();
    all.extend(cases![
        cache::ttl_present_under_a_long_ttl,
        cache::ttl_expires_for_every_operation,
        cache::ttl_set_without_ttl_clears_it,
        cache::ttl_set_replaces_the_ttl,
        cache::ttl_zero_and_over_limit_rejected,
        cache::ttl_at_the_limit_accepted,
        cache::ttl_sub_millisecond_rounds_up,
        cache::ttl_query_missing_and_persistent,
        cache::mset_entries_carry_their_own_ttl,
        cache::expired_keys_do_not_count_as_existing,
        contract::cache_mset_last_entry_wins_with_its_ttl,
        conditional::cache_set_if_absent_has_one_winner,
        sequences::model_random_cache_operations,
    ]);
    all
}

pub(crate) fn database_cases() -> Vec<Case> {
    let mut all = common_cases();
    all.extend(cases![
        database::kind_of_lists,
        database::get_of_a_list_is_wrong_type,
        database::list_ops_on_a_value_are_wrong_type,
        database::mget_gives_none_for_a_list,
        database::set_replaces_a_list,
        database::set_owned_stores_like_set,
        database::mset_replaces_a_list,
        database::delete_and_exists_see_lists,
        database::keys_and_clear_see_lists,
        database::append_creates_and_orders,
        database::append_many_is_ordered_and_all_or_nothing,
        database::missing_list_reads_empty,
        database::lrange_table,
        database::lrange_random_against_model,
        database::long_list_tail_reads,
        database::list_items_round_trip_every_class,
        database::concurrent_appends_lose_nothing,
        database::concurrent_set_and_append_keep_one_kind,
        database::clear_namespace_with_lists_beside_another,
        contract::appends_follow_commit_order_across_instances,
        contract::mset_is_atomic_to_readers,
        contract::mset_over_a_list_leaves_no_items,
        contract::set_and_delete_never_fail_under_contention,
        contract::trim_table,
        contract::trim_head_then_append_and_read,
        contract::trim_missing_and_wrong_type,
        sequences::model_random_database_operations,
        conditional::every_write_changes_the_version,
        conditional::set_if_absent_creates_once,
        conditional::set_if_version_needs_the_current_version,
        conditional::delete_if_conditions,
        conditional::update_stops_on_the_functions_error,
        conditional::set_if_racing_a_plain_set,
        conditional::update_loses_no_increment,
        conditional_model::model_random_conditional_operations,
    ]);
    all
}

/// The cases on following a list, for backends that can ([`storage_core::Database::list_window`]).
pub(crate) fn tail_cases() -> Vec<Case> {
    cases![
        tail::tail_sees_items_before_during_and_after,
        tail::tail_from_the_end_sees_only_new_items,
        tail::tail_of_a_list_not_yet_created_waits_for_it,
        tail::a_trim_past_undelivered_items_ends_the_tail,
        tail::a_deleted_list_ends_the_tail,
        tail::a_window_past_the_end_is_empty_at_any_index,
    ]
}

/// The cases on watching a namespace, for backends that keep a change log
/// ([`storage_core::Store::changes`]); both roles.
pub(crate) fn watch_cases() -> Vec<Case> {
    cases![
        watch::watch_sees_sets_deletes_and_clears_from_another_instance,
        watch::watch_reports_the_version_a_set_wrote,
        watch::one_keys_changes_keep_their_order,
        watch::a_resumed_watch_misses_nothing,
        watch::a_watcher_that_falls_behind_gets_lagged,
    ]
}

fn common_cases() -> Vec<Case> {
    cases![
        values::null_is_stored_and_distinct_from_missing,
        values::falsy_values_round_trip,
        values::strings_round_trip,
        values::integer_edges_round_trip,
        values::float_edges_round_trip_bit_for_bit,
        values::nested_documents_round_trip,
        values::depth_64_accepted,
        values::depth_65_rejected_and_nothing_stored,
        values::large_value_round_trips,
        keys::hostile_keys_are_exact,
        keys::keys_are_case_sensitive,
        keys::key_at_limit_accepted,
        keys::key_over_limit_rejected,
        keys::empty_key_rejected,
        keys::nul_in_key_rejected,
        keys::prefix_at_limit_accepted,
        keys::prefix_over_limit_rejected,
        operations::kind_of_values,
        operations::delete_reports_existence,
        operations::overwrite_replaces,
        operations::mget_order_repeats_and_missing,
        operations::mget_empty,
        operations::mset_last_of_repeated_keys_wins,
        operations::mset_rejects_bad_entry_and_stores_nothing,
        listing::keys_lists_whole_namespace,
        listing::keys_has_no_duplicates,
        listing::glob_pattern_table,
        listing::glob_literal_prefix_among_many,
        listing::prefix_is_never_seen,
        listing::glob_chars_in_prefix_do_not_widen,
        listing::clear_one_namespace_beside_another,
        listing::clear_empty_namespace,
        operations::ping_is_cheap_and_writes_nothing,
        operations::concurrent_sets_all_land,
        operations::close_is_idempotent,
        contract::object_member_order_is_kept,
        contract::oversized_value_fails_cleanly_then_works,
        contract::glob_edge_rows,
    ]
}

/// How the case gets backends.
#[derive(Clone)]
pub(crate) enum Builder {
    Cache(Arc<dyn CacheBuilder>),
    Database(Arc<dyn DatabaseBuilder>),
}

/// A backend of either role, with the operations both share.
#[derive(Clone)]
pub(crate) enum Subject {
    Cache(Arc<dyn Cache>),
    Database(Arc<dyn Database>),
}

impl Subject {
    pub fn store(&self) -> &(dyn Store + 'static) {
        match self {
            Subject::Cache(c) => c.as_ref(),
            Subject::Database(d) => d.as_ref(),
        }
    }

    pub async fn set(&self, key: &str, value: &Value) -> Result<()> {
        match self {
            Subject::Cache(c) => c.set(key, value, None).await,
            Subject::Database(d) => d.set(key, value).await,
        }
    }

    pub async fn mset(&self, entries: &[(String, Value)]) -> Result<()> {
        match self {
            Subject::Cache(c) => {
                let entries: Vec<CacheEntry> = entries
                    .iter()
                    .map(|(k, v)| CacheEntry::new(k.clone(), v.clone(), None))
                    .collect();
                c.mset(&entries).await
            }
            Subject::Database(d) => d.mset(entries).await,
        }
    }
}

impl std::ops::Deref for Subject {
    type Target = dyn Store;
    fn deref(&self) -> &Self::Target {
        self.store()
    }
}

/// What a case gets: a way to build backends, its own prefix, and a seed.
#[derive(Clone)]
pub(crate) struct Cx {
    pub builder: Builder,
    pub prefix: String,
    pub seed: u64,
}

impl Cx {
    /// A backend at the case's prefix.
    pub async fn subject(&self) -> std::result::Result<Subject, String> {
        self.subject_at(&self.prefix).await
    }

    /// A backend at an arbitrary prefix.
    pub async fn subject_at(&self, prefix: &str) -> std::result::Result<Subject, String> {
        self.build(prefix)
            .await
            .ctx(format!("building a backend with keyPrefix {prefix:?}"))
    }

    pub async fn build(&self, prefix: &str) -> Result<Subject> {
        Ok(match &self.builder {
            Builder::Cache(b) => Subject::Cache(b.build(prefix.to_string()).await?),
            Builder::Database(b) => Subject::Database(b.build(prefix.to_string()).await?),
        })
    }

    pub async fn cache(&self) -> std::result::Result<Arc<dyn Cache>, String> {
        match self.subject().await? {
            Subject::Cache(c) => Ok(c),
            Subject::Database(_) => Err("a cache case ran with a database builder".into()),
        }
    }

    pub async fn db(&self) -> std::result::Result<Arc<dyn Database>, String> {
        match self.subject().await? {
            Subject::Database(d) => Ok(d),
            Subject::Cache(_) => Err("a database case ran with a cache builder".into()),
        }
    }

    /// Clears what the case left under its prefix (best effort).
    pub async fn cleanup(&self) {
        if let Ok(s) = self.build(&self.prefix).await {
            let _ = s.clear().await;
            let _ = s.close().await;
        }
    }
}

/// A small deterministic RNG (xorshift64*), so that a failing sequence can be replayed by seed.
pub(crate) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}
