//! The plan's monthly cost through the built `prov`: text, `--json`'s `cost` key, saved plans,
//! `--no-cost`, unknown prices and failing get-pricing calls (warnings, never a failed plan).

use super::*;

const PRICED: &str = r#"
{
  servers = {
    web = { provider = "sim", plan = "small", zone = "sim-a" },
    db = { provider = "sim", plan = "medium", zone = "sim-b" },
  },
}
"#;

fn json(r: Run) -> serde_json::Value {
    serde_json::from_str(&r.stdout).unwrap_or_else(|e| panic!("{e}: {}", r.stdout))
}

#[test]
fn plan_shows_monthly_cost_before_and_after() {
    let ws = Ws::new(PRICED);
    ws.prov(&["plan"])
        .ok()
        .has("Monthly cost (estimated from the providers' prices):")
        .has("+ server.db   none -> 20.00 SIM  +20.00 SIM  sim medium (sim-b)")
        .has("Total: 0.00 -> 25.00 SIM per month (+25.00)");
    let v = json(ws.prov(&["plan", "--json"]).ok());
    assert_eq!(
        v["cost"]["totals"],
        serde_json::json!([{"currency": "SIM", "before": 0.0, "after": 25.0, "delta": 25.0}])
    );
    assert_eq!(v["cost"]["resources"][0]["address"], "server.db");
    assert_eq!(v["cost"]["resources"][0]["after"]["monthly"], 20.0);
    // The Terraform shape is unchanged beside prov's key.
    assert!(v["resource_changes"].as_array().unwrap().len() == 2);
    ws.prov(&["apply", "--auto-approve"]).ok();

    // A resize: the price before and after, and the unchanged server counted in the total.
    ws.write(&PRICED.replace(r#"plan = "medium""#, r#"plan = "large""#));
    ws.prov(&["plan", "--out", "resize.plan"])
        .ok()
        .has("~ server.db  20.00 SIM -> 40.00 SIM  +20.00 SIM  sim medium -> large (sim-b)")
        .has("Total: 25.00 -> 45.00 SIM per month (+20.00)")
        .lacks("server.web  ");
    // Saved plans keep the cost they were made with: `show` asks no provider.
    ws.prov(&["show", "resize.plan"])
        .ok()
        .has("Total: 25.00 -> 45.00 SIM per month (+20.00)");
    let v = json(ws.prov(&["show", "--json", "resize.plan"]).ok());
    assert_eq!(v["cost"]["resources"][0]["delta"]["monthly"], 20.0);
    assert_eq!(v["cost"]["resources"][0]["before"]["plan"], "medium");

    // A destroy plan: everything goes to zero.
    ws.write(PRICED);
    ws.prov(&["plan", "--destroy"])
        .ok()
        .has("- server.web")
        .has("Total: 25.00 -> 0.00 SIM per month (-25.00)");
}

#[test]
fn no_cost_leaves_it_out_and_asks_no_provider() {
    // get-pricing would hang for the manifest's 20 s timeout: with --no-cost it is never called.
    let ws = Ws::new(
        r#"
{
  providers = { pyprov = { faults = { "get-pricing" = "hang" } } },
  servers = { web = { provider = "pyprov", plan = "small", zone = "py-a" } },
}
"#,
    );
    super::exec::install_pyprov(&ws);
    let t = std::time::Instant::now();
    ws.prov(&["plan", "--no-cost"])
        .ok()
        .has("Plan: 1 to add")
        .lacks("Monthly cost");
    let v = json(ws.prov(&["plan", "--json", "--no-cost"]).ok());
    assert!(v.get("cost").is_none(), "{v:#}");
    assert!(
        t.elapsed() < std::time::Duration::from_secs(15),
        "--no-cost waited for get-pricing ({:?})",
        t.elapsed()
    );
    ws.prov(&["plan", "--no-cost", "--out", "p.plan"]).ok();
    ws.prov(&["show", "p.plan"]).ok().lacks("Monthly cost");
}

#[test]
fn unknown_prices_are_said_and_failures_do_not_fail_the_plan() {
    // pyprov prices its plans small and large; "medium" it does not know.
    let cfg = r#"
{
  providers = { pyprov = { token = "s3cr3t-pricing-token" FAULT } },
  servers = {
    web = { provider = "pyprov", plan = "small", zone = "py-a" },
    big = { provider = "pyprov", plan = "medium", zone = "py-a" },
    sim = { provider = "sim", plan = "small", zone = "sim-a" },
  },
}
"#;
    let ws = Ws::new(&cfg.replace("FAULT", ""));
    super::exec::install_pyprov(&ws);
    ws.prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("unknown: provider pyprov has no price for plan medium (server.big)")
        .has("Total: 0.00 -> 7.20 EUR per month (+7.20)")
        .has("Total: 0.00 -> 5.00 SIM per month (+5.00)")
        .has("(not counting 1 server whose price is unknown)");
    let v = json(ws.prov(&["plan", "--json"]).ok());
    assert_eq!(v["cost"]["unpriced"], 1);
    let big = v["cost"]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["address"] == "server.big")
        .unwrap()
        .clone();
    assert_eq!(big["after"]["monthly"], serde_json::Value::Null);
    assert_eq!(big["delta"], serde_json::Value::Null);

    // get-pricing fails: a warning in the cost section, the plan itself is made (exit 2: changes).
    ws.write(&cfg.replace("FAULT", r#", faults = { "get-pricing" = "exit" }"#));
    let r = ws
        .prov(&["plan", "--detailed-exitcode"])
        .code(2)
        .has("Plan: 3 to add")
        .has("unknown: provider pyprov has no prices: pyprov: get-pricing")
        .has("(server.big, server.web)")
        .has("Total: 0.00 -> 5.00 SIM per month (+5.00)")
        .lacks("s3cr3t-pricing-token");
    assert!(r.stdout.contains("not counting 2 servers"), "{}", r.stdout);
    let out = ws.prov(&["plan", "--json"]).ok().stdout;
    assert!(!out.contains("s3cr3t-pricing-token"), "{out}");
}
