//! Report prose as Markdown files next to the experiments (`src/experiments/prose/*.md`,
//! compiled in with `include_str!`), with `{name}` placeholders filled in.

/// `template` with every `{name}` of `values` replaced, less the file's final newline.
///
/// ```
/// use imle_paper::experiments::template::fill;
/// assert_eq!(fill("k = {k}, {k} again\n", &[("k", "10".into())]), "k = 10, 10 again");
/// ```
pub fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = template.strip_suffix('\n').unwrap_or(template).to_string();
    for (name, value) in values {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::fill;

    /// Every template and the placeholders its caller fills: none is left over.
    #[test]
    fn every_placeholder_of_every_template_is_filled() {
        let v = |names: &[&'static str]| -> Vec<(&'static str, String)> {
            names.iter().map(|n| (*n, "x".to_string())).collect()
        };
        for (text, names) in [
            (
                include_str!("prose/table1_intro.md"),
                v(&["data_note", "maxlen", "epochs", "batch"]),
            ),
            (include_str!("prose/table1_notes.md"), v(&[])),
            (include_str!("prose/table2_intro.md"), v(&["data_note"])),
            (include_str!("prose/table2_notes.md"), v(&[])),
        ] {
            let out = fill(text, &names);
            assert!(!out.contains('{') && !out.contains('}'), "{out}");
            assert!(!out.ends_with("\n\n"), "one final newline is the file's");
        }
    }
}
