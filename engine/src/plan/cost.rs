//! The monthly cost of a plan, before → after per server and in total, from each provider's get-pricing.
//!
//! Computed at plan time ([`estimate`]) and kept in the plan (and its file), so `prov show` of a
//! saved plan shows the prices the plan was made with. Only servers cost money here: taskservs,
//! clusters and components run on them. A price the provider does not list, or a get-pricing
//! call that fails or times out, leaves that price unknown, said in [`Cost::unknown`]; it never
//! fails the plan (the cost is an estimate for reviewers, not an input of apply).
//!
//! Prices are matched by plan and zone: an entry for the server's zone, else one without a zone,
//! else one whose zone is a prefix of the server's (a region's price for its zones, as AWS
//! prices region `us-east-1` for zone `us-east-1a`). Amounts are kept in hundredths of the
//! currency unit so totals add up exactly.

use super::{Action, Plan, PlanMode};
use crate::model::Address;
use crate::registry::Bound;
use crate::sensitive::REDACTED;
use crate::traits::Pricing;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

/// A plan's cost: the servers it changes, the totals over its whole scope, what is unknown.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cost {
    /// Every server the plan changes (creates, updates, replaces, destroys) and every deposed
    /// object it destroys, in plan order.
    pub resources: Vec<ResourceCost>,
    /// Per currency (sorted by name): the monthly total of every server in the plan's scope,
    /// unchanged ones included, before and after. Unknown prices are not counted.
    pub totals: Vec<CostTotal>,
    /// One line per reason a price is unknown, naming the provider, plan and servers.
    pub unknown: Vec<String>,
    /// How many servers' prices (before or after) are unknown and left out of the totals.
    pub unpriced: usize,
}

/// One changed server's monthly price before and after the plan.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceCost {
    pub address: Address,
    /// The provider id of a deposed object (None for the address's own object).
    pub deposed: Option<String>,
    /// None: nothing exists before (a create).
    pub before: Option<Priced>,
    /// None: nothing exists after (a destroy).
    pub after: Option<Priced>,
}

/// What one server costs: its provider, plan and zone, and the price when known.
#[derive(Clone, Debug, PartialEq)]
pub struct Priced {
    pub provider: String,
    /// `(sensitive value)` when the plan attribute is a secret.
    pub plan: String,
    pub zone: String,
    /// None: the price is unknown (see [`Cost::unknown`]).
    pub price: Option<Money>,
}

/// A monthly amount in hundredths of `currency`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Money {
    pub cents: i64,
    pub currency: String,
}

impl Money {
    /// `12.34 USD`.
    pub fn display(&self) -> String {
        format!("{} {}", cents_text(self.cents), self.currency)
    }
}

/// The totals in one currency.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CostTotal {
    pub currency: String,
    pub before_cents: i64,
    pub after_cents: i64,
}

impl CostTotal {
    pub fn delta_cents(&self) -> i64 {
        self.after_cents - self.before_cents
    }
}

impl ResourceCost {
    /// The change in monthly price when both sides are known in one currency (a create or a
    /// destroy counts the missing side as zero).
    pub fn delta(&self) -> Option<Money> {
        let side = |p: &Option<Priced>| match p {
            None => Some(None),
            Some(Priced { price: Some(m), .. }) => Some(Some(m.clone())),
            Some(_) => None,
        };
        match (side(&self.before)?, side(&self.after)?) {
            (Some(b), Some(a)) if a.currency == b.currency => Some(Money {
                cents: a.cents - b.cents,
                currency: a.currency,
            }),
            (Some(_), Some(_)) => None,
            (None, Some(a)) => Some(a),
            (Some(b), None) => Some(Money {
                cents: -b.cents,
                currency: b.currency,
            }),
            (None, None) => None,
        }
    }
    /// The address as shown: `server.web`, or `server.web (deposed ID)`.
    pub fn label(&self) -> String {
        match &self.deposed {
            Some(id) => format!("{} (deposed {id})", self.address),
            None => self.address.to_string(),
        }
    }
}

/// `12.34`, `-0.50`, `1234.00`: hundredths as a decimal.
pub fn cents_text(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    format!("{sign}{}.{:02}", c / 100, c % 100)
}

/// `+12.34`, `-0.50`, `0.00`: a signed difference.
pub fn delta_text(cents: i64) -> String {
    if cents > 0 {
        format!("+{}", cents_text(cents))
    } else {
        cents_text(cents)
    }
}

/// What a server is, for pricing: provider, plan, zone (None: known only after apply).
struct Sized {
    provider: String,
    plan: Option<String>,
    zone: Option<String>,
    secret_plan: bool,
}

fn sized(provider: &str, values: &Value, unknown: &Value, sensitive: &[String]) -> Sized {
    let known = |k: &str| -> Option<String> {
        let unk = unknown.get(k).is_some_and(|u| u != &Value::Bool(false));
        (!unk).then(|| values.get(k).and_then(Value::as_str).map(str::to_string))?
    };
    Sized {
        provider: provider.to_string(),
        plan: known("plan"),
        zone: known("zone"),
        secret_plan: sensitive.iter().any(|p| p == "plan"),
    }
}

/// One server to price: address, deposed id, what it is before and after, whether the plan
/// changes it.
type Item = (Address, Option<String>, Option<Sized>, Option<Sized>, bool);

/// The price of `plan` in `zone` among a provider's answers (see the module doc for the order).
pub fn find_price<'a>(prices: &'a [Pricing], plan: &str, zone: &str) -> Option<&'a Pricing> {
    let of_plan = || prices.iter().filter(move |p| p.plan == plan);
    of_plan()
        .find(|p| p.zone.as_deref() == Some(zone))
        .or_else(|| of_plan().find(|p| p.zone.is_none()))
        .or_else(|| {
            of_plan().find(|p| {
                p.zone
                    .as_deref()
                    .is_some_and(|z| !z.is_empty() && zone.starts_with(z))
            })
        })
}

/// Each provider's get-pricing answer, or why there is none.
pub type Answers = HashMap<String, Result<Vec<Pricing>, String>>;

/// Asks each provider once, concurrently, each call bounded by `timeout`. A plan asks the
/// providers it may price while it refreshes (see `ops::plan_from`), so the call costs no
/// latency of its own; [`estimate`] asks those it still misses.
pub async fn ask(providers: BTreeSet<String>, bound: &Bound, timeout: Duration) -> Answers {
    let mut answers = Answers::new();
    let mut calls = tokio::task::JoinSet::new();
    for name in providers {
        match bound.provider(&name) {
            Err(e) => {
                answers.insert(name, Err(e.to_string()));
            }
            Ok(p) => {
                // Replaced by the answer; stays if the call panics.
                answers.insert(name.clone(), Err("get-pricing did not complete".into()));
                calls.spawn(async move {
                    let answer = match tokio::time::timeout(timeout, p.get_pricing()).await {
                        Err(_) => Err(format!(
                            "get-pricing did not answer within {}s",
                            timeout.as_secs_f64()
                        )),
                        Ok(Err(e)) => Err(e.to_string()),
                        Ok(Ok(prices)) => Ok(prices),
                    };
                    (name, answer)
                });
            }
        }
    }
    while let Some(done) = calls.join_next().await {
        if let Ok((name, answer)) = done {
            answers.insert(name, answer);
        }
    }
    answers
}

/// Prices every server in the plan. `record_providers` names the recorded implementation of
/// servers whose provider the plan changes (their before-price is the old provider's); `secrets`
/// are scrubbed from pricing errors; `asked` holds the answers already asked for ([`ask`]).
/// Refresh-only plans change nothing and cost nothing new: None.
pub async fn estimate(
    plan: &Plan,
    bound: &Bound,
    record_providers: &HashMap<String, String>,
    timeout: Duration,
    asked: Answers,
) -> Option<Cost> {
    if plan.mode == PlanMode::RefreshOnly {
        return None;
    }
    let mut items: Vec<Item> = Vec::new();
    for c in plan
        .changes
        .iter()
        .filter(|c| matches!(c.address, Address::Server(_)))
    {
        let before_provider = record_providers
            .get(&c.address.to_string())
            .map(String::as_str)
            .unwrap_or(&c.implementation);
        let before = c
            .before
            .as_ref()
            .map(|b| sized(before_provider, b, &Value::Bool(false), &c.sensitive));
        let after = match &c.action {
            Action::Delete { .. } => None,
            Action::NoOp => before.as_ref().map(|b| Sized {
                provider: b.provider.clone(),
                plan: b.plan.clone(),
                zone: b.zone.clone(),
                secret_plan: b.secret_plan,
            }),
            _ => c
                .after_values()
                .map(|a| sized(&c.implementation, a, &c.after_unknown, &c.sensitive)),
        };
        items.push((c.address.clone(), None, before, after, !c.action.is_noop()));
    }
    for d in &plan.deposed {
        if matches!(d.address, Address::Server(_)) {
            let before = sized(
                &d.implementation,
                &d.before,
                &Value::Bool(false),
                &d.sensitive,
            );
            items.push((
                d.address.clone(),
                Some(d.provider_id.clone()),
                Some(before),
                None,
                true,
            ));
        }
    }
    if items.is_empty() {
        return Some(Cost::default());
    }
    let providers: BTreeSet<String> = items
        .iter()
        .flat_map(|(_, _, b, a, _)| [b, a])
        .flatten()
        .map(|s| s.provider.clone())
        .filter(|p| !asked.contains_key(p))
        .collect();
    let mut answers = asked;
    if !providers.is_empty() {
        answers.extend(ask(providers, bound, timeout).await);
    }
    let secrets = plan.secrets();
    Some(price_all(items, &answers, &secrets))
}

/// The monthly price of `s` from what its provider answered, or why there is none
/// (`plan_shown`: the plan as a plan may show it, redacted when secret).
fn lookup(
    s: &Sized,
    answers: &Answers,
    secrets: &[String],
    plan_shown: &str,
) -> Result<Money, String> {
    match (answers.get(&s.provider), &s.plan, &s.zone) {
        (None, ..) => Err(format!("provider {} was not asked for prices", s.provider)),
        (Some(Err(e)), ..) => Err(format!(
            "provider {} has no prices: {}",
            s.provider,
            scrub(e, secrets)
        )),
        (Some(Ok(_)), None, _) | (Some(Ok(_)), _, None) => Err(format!(
            "the plan or zone of a server on provider {} is known only after apply",
            s.provider
        )),
        (Some(Ok(prices)), Some(plan), Some(zone)) => match find_price(prices, plan, zone) {
            Some(p) => Ok(Money {
                cents: (p.monthly * 100.0).round() as i64,
                currency: p.currency.clone(),
            }),
            None if prices.iter().any(|p| &p.plan == plan) => Err(format!(
                "provider {} has no price for plan {plan_shown} in zone {zone}",
                s.provider
            )),
            None => Err(format!(
                "provider {} has no price for plan {plan_shown}",
                s.provider
            )),
        },
    }
}

fn price_all(items: Vec<Item>, answers: &Answers, secrets: &[String]) -> Cost {
    let mut cost = Cost::default();
    // Reason → servers it leaves unpriced (BTreeMap: deterministic order).
    let mut unknown: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut totals: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    for (address, deposed, before, after, changed) in items {
        let label = match &deposed {
            Some(id) => format!("{address} (deposed {id})"),
            None => address.to_string(),
        };
        let mut price = |s: &Sized| -> Priced {
            let plan_shown = if s.secret_plan {
                REDACTED.to_string()
            } else {
                s.plan
                    .clone()
                    .unwrap_or_else(|| "(known after apply)".into())
            };
            let zone_shown = s
                .zone
                .clone()
                .unwrap_or_else(|| "(known after apply)".into());
            let found = lookup(s, answers, secrets, &plan_shown);
            let price = match found {
                Ok(m) => Some(m),
                Err(reason) => {
                    unknown.entry(reason).or_default().insert(label.clone());
                    None
                }
            };
            Priced {
                provider: s.provider.clone(),
                plan: plan_shown,
                zone: zone_shown,
                price,
            }
        };
        let before = before.as_ref().map(&mut price);
        let after = after.as_ref().map(&mut price);
        let mut unpriced = false;
        for (side, p) in [(0, &before), (1, &after)] {
            match p {
                Some(Priced { price: Some(m), .. }) => {
                    let t = totals.entry(m.currency.clone()).or_default();
                    if side == 0 {
                        t.0 += m.cents;
                    } else {
                        t.1 += m.cents;
                    }
                }
                Some(Priced { price: None, .. }) => unpriced = true,
                None => {}
            }
        }
        cost.unpriced += usize::from(unpriced);
        if changed {
            cost.resources.push(ResourceCost {
                address,
                deposed,
                before,
                after,
            });
        }
    }
    cost.totals = totals
        .into_iter()
        .map(|(currency, (b, a))| CostTotal {
            currency,
            before_cents: b,
            after_cents: a,
        })
        .collect();
    cost.unknown = unknown
        .into_iter()
        .map(|(reason, servers)| {
            let list: Vec<String> = servers.into_iter().collect();
            let shown = if list.len() > 5 {
                format!("{} and {} more", list[..5].join(", "), list.len() - 5)
            } else {
                list.join(", ")
            };
            format!("{reason} ({shown})")
        })
        .collect();
    cost
}

fn scrub(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets.iter().filter(|s| s.len() >= 4) {
        t = t.replace(s.as_str(), REDACTED);
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn price(plan: &str, zone: Option<&str>, monthly: f64) -> Pricing {
        Pricing {
            plan: plan.into(),
            zone: zone.map(Into::into),
            hourly: monthly / 730.0,
            monthly,
            currency: "USD".into(),
        }
    }

    #[test]
    fn zone_then_zoneless_then_region_prefix() {
        let prices = vec![
            price("a", Some("us-east-1"), 1.0),
            price("a", None, 2.0),
            price("a", Some("z1"), 3.0),
            price("b", Some("us-east-1"), 4.0),
        ];
        assert_eq!(find_price(&prices, "a", "z1").unwrap().monthly, 3.0);
        assert_eq!(find_price(&prices, "a", "z2").unwrap().monthly, 2.0);
        assert_eq!(find_price(&prices, "b", "us-east-1a").unwrap().monthly, 4.0);
        assert!(find_price(&prices, "b", "eu-west-1a").is_none());
        assert!(find_price(&prices, "c", "z1").is_none());
    }

    #[test]
    fn amounts_as_decimals() {
        assert_eq!(cents_text(1234), "12.34");
        assert_eq!(cents_text(-50), "-0.50");
        assert_eq!(delta_text(5), "+0.05");
        assert_eq!(delta_text(0), "0.00");
    }

    fn server(provider: &str, plan: &str) -> Sized {
        Sized {
            provider: provider.into(),
            plan: Some(plan.into()),
            zone: Some("z".into()),
            secret_plan: false,
        }
    }

    #[test]
    fn totals_count_known_prices_and_unknown_ones_are_named() {
        let mut answers = Answers::new();
        answers.insert(
            "p".into(),
            Ok(vec![price("small", None, 10.0), price("big", None, 40.0)]),
        );
        answers.insert("down".into(), Err("p: get-pricing: token s3cret".into()));
        let a = |s: &str| s.parse::<Address>().unwrap();
        let items = vec![
            (
                a("server.a"),
                None,
                Some(server("p", "small")),
                Some(server("p", "big")),
                true,
            ),
            (a("server.b"), None, None, Some(server("p", "huge")), true),
            (
                a("server.c"),
                None,
                Some(server("p", "small")),
                Some(server("p", "small")),
                false,
            ),
            (a("server.d"), None, Some(server("down", "x")), None, true),
        ];
        let c = price_all(items, &answers, &["s3cret".into()]);
        assert_eq!(c.resources.len(), 3, "unchanged servers are only counted");
        assert_eq!(
            c.totals,
            vec![CostTotal {
                currency: "USD".into(),
                before_cents: 2000,
                after_cents: 5000
            }]
        );
        assert_eq!(c.unpriced, 2);
        assert_eq!(
            c.unknown,
            vec![
                "provider down has no prices: p: get-pricing: token (sensitive value) (server.d)",
                "provider p has no price for plan huge (server.b)",
            ]
        );
        assert_eq!(c.resources[0].delta().unwrap().cents, 3000);
        assert_eq!(c.resources[1].delta(), None);
    }
}
