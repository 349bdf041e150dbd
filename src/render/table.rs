//! Plain aligned text tables for every listing command (`prov server list`, `prov taskserv
//! status`, `prov extension list`, ...).

/// Renders `rows` under `headers`, each column as wide as its widest cell, two spaces apart;
/// trailing spaces are trimmed.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            if i < widths.len() {
                widths[i] = widths[i].max(c.chars().count());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i > 0 {
                s.push_str("  ");
            }
            s.push_str(c);
            let pad = widths.get(i).copied().unwrap_or(0);
            for _ in c.chars().count()..pad {
                s.push(' ');
            }
        }
        let mut s = s.trim_end().to_string();
        s.push('\n');
        s
    };
    let mut out = line(headers.to_vec());
    for r in rows {
        out.push_str(&line(r.iter().map(String::as_str).collect()));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn columns_align_to_the_widest_cell() {
        let t = super::table(
            &["NAME", "STATUS"],
            &[
                vec!["web-01".into(), "running".into()],
                vec!["a".into(), "stopped".into()],
            ],
        );
        assert_eq!(t, "NAME    STATUS\nweb-01  running\na       stopped\n");
    }
}
