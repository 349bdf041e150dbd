//! The plan a reviewer reads, through the binary: `--format markdown` on `prov plan` and `prov show PLAN`, drift in it, `--max-bytes` cuts.

use super::*;

const BEFORE: &str = r#"{
  servers = {
    db = { provider = "sim", plan = "small", zone = "sim-a",
           taskservs = { redis = { version = "1.0.0", settings = {
             conf = "{\"limits\":{\"size\":20},\"mode\":\"lru\"}", password = "pw-1234-old" },
             sensitive = ["settings.password"] } } },
    web = { provider = "sim", plan = "small", zone = "sim-a", tags = { db = "${server.db.private_ip}" } },
    old = { provider = "sim", plan = "small", zone = "sim-a" },
  },
  outputs = { web_ip = "${server.web.public_ip}" },
}"#;

/// db moves zone (replace), its redis gets new settings, old goes, api comes.
const AFTER: &str = r#"{
  servers = {
    db = { provider = "sim", plan = "small", zone = "sim-b",
           taskservs = { redis = { version = "1.0.0", settings = {
             conf = "{\"limits\":{\"size\":50},\"mode\":\"lru\"}", password = "pw-5678-new" },
             sensitive = ["settings.password"] } } },
    web = { provider = "sim", plan = "small", zone = "sim-a", tags = { db = "${server.db.private_ip}" } },
    api = { provider = "sim", plan = "small", zone = "sim-a" },
  },
  outputs = { web_ip = "${server.web.public_ip}", api_ip = "${server.api.public_ip}" },
}"#;

fn pos(doc: &str, s: &str) -> usize {
    doc.find(s)
        .unwrap_or_else(|| panic!("expected {s:?} in\n{doc}"))
}

#[test]
fn markdown_plan_and_show_summary_first() {
    let ws = Ws::new(BEFORE);
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.write(AFTER);
    // Changed outside prov: refresh finds it and the comment says so.
    ws.prov(&["sim", "set", "web", "plan", "large"]).ok();

    let md = ws
        .prov(&["plan", "--format", "markdown", "--out", "plan.bin"])
        .ok()
        .lacks("pw-1234")
        .lacks("pw-5678")
        .has("(sensitive value changed)")
        .lacks("Saved the plan")
        .stdout;
    // Counts first, then every destroy and replace with its reason, before any detail.
    let title = pos(
        &md,
        "### prov plan: 1 to add, 1 to change, 2 to replace, 1 to destroy",
    );
    assert_eq!(title, 0, "{md}");
    let table = pos(&md, "| destroy | 1 |");
    let destroy = pos(&md, "| `-` | server.old | no longer in the configuration |");
    let replace = pos(&md, "| `-/+` | server.db | zone forces replacement |");
    let drift = pos(&md, "#### Changed outside prov (found by refresh)");
    let graph = pos(&md, "```mermaid\nflowchart LR\n");
    let details = pos(&md, "<details><summary>");
    let outputs = pos(&md, "#### Outputs");
    assert!(
        table < destroy && destroy < drift && replace < drift,
        "{md}"
    );
    assert!(
        drift < graph && graph < details && details < outputs,
        "{md}"
    );
    // The JSON inside the setting is diffed by key path, in a diff fence.
    pos(&md, "```diff\n");
    pos(&md, "! settings.conf.limits.size = 20 -> 50");
    pos(&md, "settings.password");
    pos(&md, "! plan = \"small\" -> \"large\"");
    pos(&md, "+ api_ip = (known after apply)");
    // The graph draws the replaced db before what depends on it.
    pos(&md, "[\"-/+ server.db\"]:::replace");
    assert!(md.len() < markdown_default_max(), "{}", md.len());

    // The saved plan shows the same comment, pointing at itself for the full plan.
    let shown = ws
        .prov(&["show", "--format", "markdown", "plan.bin"])
        .ok()
        .lacks("pw-1234")
        .lacks("pw-5678")
        .stdout;
    assert_eq!(shown, md);
    // Deterministic: the same plan twice gives the same bytes.
    let again = ws
        .prov(&["show", "--format", "markdown", "plan.bin"])
        .ok()
        .stdout;
    assert_eq!(again, shown);
    // Markdown is for plans; the state has text and --json.
    ws.prov(&["show", "--format", "markdown"])
        .code(1)
        .has("prov show --format markdown PLANFILE");
    ws.prov(&["plan", "--format", "markdown", "--max-bytes", "10"])
        .code(1)
        .has("--max-bytes");
}

fn markdown_default_max() -> usize {
    65_000
}

#[test]
fn markdown_max_bytes_keeps_the_summary_and_names_what_was_cut() {
    let mut servers = String::new();
    for i in 0..60 {
        servers.push_str(&format!(
            "s{i:02} = {{ provider = \"sim\", plan = \"small\", zone = \"sim-a\", tags = {{ n = \"{i}\", note = \"{}\" }} }},\n",
            "x".repeat(40)
        ));
    }
    let ws =
        Ws::new(r#"{ servers = { gone = { provider = "sim", plan = "small", zone = "sim-a" } } }"#);
    ws.prov(&["apply", "--auto-approve"]).ok();
    ws.write(&format!("{{ servers = {{ {servers} }} }}"));

    let max = 4000;
    let md = ws
        .prov(&[
            "plan",
            "--format",
            "markdown",
            "--out",
            "big.plan",
            "--max-bytes",
            &max.to_string(),
        ])
        .ok()
        .stdout;
    assert!(md.len() <= max, "{} bytes:\n{md}", md.len());
    pos(
        &md,
        "### prov plan: 60 to add, 0 to change, 0 to replace, 1 to destroy",
    );
    pos(
        &md,
        "| `-` | server.gone | no longer in the configuration |",
    );
    pos(
        &md,
        "**Cut to stay under 4000 bytes.** The full plan: `prov show big.plan`.",
    );
    // The cost table of 60 servers does not fit; its totals do, above the details.
    let total = pos(&md, "**Total:** 5.00 -> 300.00 SIM per month (+295.00)");
    assert!(total < pos(&md, "<details>"), "{md}");
    pos(&md, "the cost per resource (the totals are above)");
    // Every resource is either shown in full or named as left out.
    let note = &md[pos(&md, "Left out: ")..];
    let kept = md.matches("<details><summary>").count();
    assert!(kept > 0, "{md}");
    let left: usize = note
        .split("the details of ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count of left-out details in {note}"));
    assert_eq!(kept + left, 61, "{md}");
    for i in 0..60 {
        let a = format!("server.s{i:02}");
        assert!(
            md.contains(&format!("<b>{a}</b>"))
                || note.contains(&format!("`{a}`"))
                || note.contains(" more"),
            "{a} neither shown nor named:\n{md}"
        );
    }

    // Where the full plan is can be said explicitly (a CI artifact).
    let url = "https://ci.example/job/7/artifacts/plan.txt";
    ws.prov(&[
        "show",
        "--format",
        "markdown",
        "big.plan",
        "--max-bytes",
        "2000",
        "--full-plan",
        url,
    ])
    .ok()
    .has(&format!("The full plan: {url}."));
    // The whole plan fits the default: nothing is cut but the graph, drawn to a readable size.
    ws.prov(&["show", "--format", "markdown", "big.plan"])
        .ok()
        .lacks("Cut to stay under")
        .has("40 of 61 changed resources drawn (destroys and replaces first)")
        .has("n39[")
        .lacks("n40[");
}
