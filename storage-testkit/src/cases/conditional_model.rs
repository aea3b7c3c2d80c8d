//! A model-based case for versions: a random sequence of plain writes, appends, versioned
//! reads and conditional writes and deletes, each checked against a model that knows what each
//! key holds and, once read or returned, its version. Not the targeted cases
//! (`conditional.rs`).

use super::{Cx, Rng};
use crate::check::{CaseResult, same};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use storage_core::{Condition, ErrorKind, Result, Version};

const STEPS: usize = 600;
const KEYS: &[&str] = &["a", "b", "c", "d"];

/// What a model key holds: a value and its version once known, or a list.
#[derive(Debug, Clone)]
enum Held {
    Value(Value, Option<Version>),
    List,
}

/// The outcome the model expects: success, a conflict with the current version when the model
/// knows it, or another kind of error.
#[derive(Debug, PartialEq)]
enum Want {
    Done,
    Conflict(Option<Option<Version>>),
    Error(ErrorKind),
}

fn judge<T>(got: &Result<T>, want: &Want) -> bool {
    match (got, want) {
        (Ok(_), Want::Done) => true,
        (Err(e), Want::Conflict(current)) => {
            e.kind() == ErrorKind::Conflict
                && current.is_none_or(|c| e.as_conflict().map(|x| x.current) == Some(c))
        }
        (Err(e), Want::Error(kind)) => e.kind() == *kind,
        _ => false,
    }
}

fn show<T: std::fmt::Debug>(r: &Result<T>) -> String {
    match r {
        Ok(v) => format!("Ok({v:?})"),
        Err(e) => format!("Err({e})"),
    }
}

/// What a condition expects of a key.
fn expect(condition: &Condition, held: Option<&Held>) -> Want {
    match (condition, held) {
        (Condition::Any, _) | (Condition::Absent, None) => Want::Done,
        (Condition::Absent, Some(Held::Value(_, v))) => Want::Conflict(v.map(Some)),
        (Condition::Absent, Some(Held::List)) | (Condition::Version(_), None) => {
            Want::Conflict(Some(None))
        }
        (Condition::Version(_), Some(Held::List)) => Want::Error(ErrorKind::WrongType),
        (Condition::Version(want), Some(Held::Value(_, Some(have)))) if want == have => Want::Done,
        (Condition::Version(_), Some(Held::Value(_, v))) => Want::Conflict(v.map(Some)),
    }
}

pub async fn model_random_conditional_operations(cx: Cx) -> CaseResult {
    let db = cx.db().await?;
    let mut model: BTreeMap<String, Held> = BTreeMap::new();
    let mut rng = Rng::new(cx.seed);
    let fail = |step: usize, op: String| format!("step {step} (seed {}): {op}", cx.seed);
    for step in 0..STEPS {
        let key = rng.pick(KEYS).to_string();
        let value = json!(rng.below(1000));
        match rng.below(7) {
            0 => {
                db.set(&key, &value)
                    .await
                    .map_err(|e| fail(step, format!("set {key}: {e}")))?;
                model.insert(key, Held::Value(value, None));
            }
            1 => {
                let got = db.append(&key, &value).await;
                let ok = !matches!(model.get(&key), Some(Held::Value(..)));
                if got.is_ok() != ok {
                    return Err(fail(step, format!("append {key}: {}", show(&got))));
                }
                model.entry(key).or_insert(Held::List);
            }
            2 | 3 => {
                let got = db.get_versioned(&key).await;
                match (&got, model.get_mut(&key)) {
                    (Ok(None), None) => {}
                    (Err(e), Some(Held::List)) if e.kind() == ErrorKind::WrongType => {}
                    (Ok(Some((v, version))), Some(Held::Value(want, known)))
                        if same(v, want) && known.is_none_or(|k| k == *version) =>
                    {
                        *known = Some(*version);
                    }
                    (_, held) => {
                        return Err(fail(
                            step,
                            format!("get_versioned {key}: {}, model has {held:?}", show(&got)),
                        ));
                    }
                }
            }
            4 | 5 => {
                let condition = pick_condition(&mut rng, model.get(&key));
                let want = expect(&condition, model.get(&key));
                let got = db.set_if(&key, &value, &condition).await;
                check(&got, &want, || format!("set_if {key} {condition}"))
                    .map_err(|e| fail(step, e))?;
                if let Ok(version) = got {
                    if let Some(Held::Value(_, Some(old))) = model.get(&key)
                        && *old == version
                    {
                        return Err(fail(step, format!("set_if {key} kept version {old}")));
                    }
                    model.insert(key, Held::Value(value, Some(version)));
                }
            }
            _ => {
                let condition = pick_condition(&mut rng, model.get(&key));
                let want = expect(&condition, model.get(&key));
                let got = db.delete_if(&key, &condition).await;
                check(&got, &want, || format!("delete_if {key} {condition}"))
                    .map_err(|e| fail(step, e))?;
                let removed = got.as_ref().is_ok_and(|r| *r);
                let expected =
                    got.is_ok() && condition != Condition::Absent && model.contains_key(&key);
                if removed != expected {
                    return Err(fail(
                        step,
                        format!("delete_if {key} {condition}: removed {removed}"),
                    ));
                }
                if removed {
                    model.remove(&key);
                }
            }
        }
    }
    Ok(())
}

fn check<T: std::fmt::Debug>(
    got: &Result<T>,
    want: &Want,
    op: impl Fn() -> String,
) -> Result<(), String> {
    if judge(got, want) {
        return Ok(());
    }
    if let Err(e) = got
        && e.kind() != ErrorKind::Conflict
        && !matches!(want, Want::Error(_))
    {
        return Err(format!("{}: unexpected error: {e}", op()));
    }
    Err(format!(
        "{}: backend gave {}, model expects {want:?}",
        op(),
        show(got)
    ))
}

/// Any, absent, the known version, or a version nobody wrote.
fn pick_condition(rng: &mut Rng, held: Option<&Held>) -> Condition {
    match (rng.below(4), held) {
        (0, _) => Condition::Any,
        (1, _) => Condition::Absent,
        (2, Some(Held::Value(_, Some(v)))) => Condition::Version(*v),
        _ => Condition::Version(Version::from_raw(rng.next() | 1)),
    }
}
