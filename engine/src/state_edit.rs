//! `prov state rm|mv|unprotect`: the rules for editing records by hand (what may move where,
//! what an unreadable record allows), each edit one commit under the locks of what it touches.

use crate::error::EngineError;
use crate::model::Address;
use prov_state::{Change, StateError, StateStore};
use std::collections::BTreeSet;
use std::time::Duration;

/// A record `remove` took out although it could not be read (damaged, or nested deeper than
/// any prov reads): its stored bytes went to history as they were.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreadable {
    pub address: String,
    pub detail: String,
}

/// Removes the records of `addresses` (all or none: an address without a record is an error
/// and nothing is removed); the real objects are untouched. Removing is also how a user gets rid
/// of a record that cannot be read, so those are removed and reported.
pub fn remove(
    store: &dyn StateStore,
    addresses: &[String],
    lock_timeout: Duration,
) -> Result<Vec<Unreadable>, EngineError> {
    for a in addresses {
        parse(a)?;
    }
    let wanted: BTreeSet<String> = addresses.iter().cloned().collect();
    store.lock_resources(&wanted, lock_timeout)?;
    let mut unreadable = Vec::new();
    for a in addresses {
        match store.record(a) {
            Ok(Some(_)) => {}
            Ok(None) => {
                return Err(refused(format!(
                    "{a} is not in the state; nothing was removed"
                )))
            }
            Err(StateError::Corrupt {
                address: Some(bad),
                detail,
                ..
            }) if bad == *a => unreadable.push(Unreadable {
                address: a.clone(),
                detail,
            }),
            Err(e) => return Err(e.into()),
        }
    }
    let changes: Vec<Change> = addresses
        .iter()
        .map(|a| Change::Delete(a.clone()))
        .collect();
    store.commit(&changes)?;
    Ok(unreadable)
}

/// Whether `from` may move to `to` before anything is read: both are addresses of one kind.
/// `declared`, when the configuration was evaluated, must contain `to` — a record moved to an
/// undeclared address is destroyed by the next apply, so a typo is refused before it costs a
/// server (`None`: the caller chose not to check, `--force`).
pub fn check_move(
    from: &str,
    to: &str,
    declared: Option<&dyn Fn(&Address) -> bool>,
) -> Result<(), EngineError> {
    let (f, t) = (parse(from)?, parse(to)?);
    if f.kind() != t.kind() {
        return Err(refused(format!(
            "cannot move {f} to {t}: a {} record cannot become a {}",
            f.kind().as_str(),
            t.kind().as_str()
        )));
    }
    if let Some(declared) = declared {
        if !declared(&t) {
            return Err(refused(format!(
                "{to} is not declared in the configuration: the next apply would destroy what \
                 {from} records; declare it first (or pass --force); nothing was moved"
            )));
        }
    }
    Ok(())
}

/// Moves the record at `from` to `to` (which must hold none), in one commit.
pub fn move_record(
    store: &dyn StateStore,
    from: &str,
    to: &str,
    lock_timeout: Duration,
) -> Result<(), EngineError> {
    check_move(from, to, None)?;
    let wanted: BTreeSet<String> = [from.to_string(), to.to_string()].into_iter().collect();
    store.lock_resources(&wanted, lock_timeout)?;
    let mut rec = store
        .record(from)?
        .ok_or_else(|| refused(format!("{from} is not in the state")))?;
    if store.record(to)?.is_some() {
        return Err(refused(format!(
            "{to} is already in the state; nothing was moved"
        )));
    }
    rec.address = to.to_string();
    store.commit(&[Change::Put(rec), Change::Delete(from.to_string())])?;
    Ok(())
}

/// Lifts the protection the state keeps for `address` (`lifecycle.prevent_destroy` as it was
/// applied). False: it was not protected, and nothing was written.
pub fn unprotect(
    store: &dyn StateStore,
    address: &str,
    lock_timeout: Duration,
) -> Result<bool, EngineError> {
    parse(address)?;
    let wanted: BTreeSet<String> = [address.to_string()].into_iter().collect();
    store.lock_resources(&wanted, lock_timeout)?;
    let mut rec = store.record(address)?.ok_or_else(|| {
        refused(format!(
            "{address} is not in the state; nothing was changed"
        ))
    })?;
    if !rec.protected {
        return Ok(false);
    }
    rec.protected = false;
    store.commit(&[Change::Put(rec)])?;
    Ok(true)
}

fn parse(a: &str) -> Result<Address, EngineError> {
    a.parse::<Address>().map_err(refused)
}

fn refused(message: String) -> EngineError {
    EngineError::Refused(message)
}
