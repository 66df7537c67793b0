//! The crates read as their architecture: no two modules import each other, directly or
//! through others (the `use crate::` / `super::` / `self::` paths of `src/`, `imle/src`
//! and `imle-conv/src`, doc comments and test modules left out).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`a::b`; the crate root is "") -> source without comments and tests.
fn modules(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|e| e != "rs") {
                continue;
            }
            let rel = path.strip_prefix(root).unwrap().with_extension("");
            let mut parts: Vec<String> = rel
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            if matches!(
                parts.last().map(String::as_str),
                Some("mod" | "lib" | "main")
            ) {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            let code: Vec<&str> = code
                .lines()
                .filter(|l| !l.trim_start().starts_with("//"))
                .collect();
            out.insert(parts.join("::"), code.join("\n"));
        }
    }
    out
}

/// Every path that starts with `crate`, `super` or `self`, brace groups expanded.
fn paths(code: &str) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let ident = |i: usize| b[i].is_ascii_alphanumeric() || b[i] == b'_';
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let at_word = i == 0 || !ident(i - 1);
        let rest = &b[i..];
        if at_word
            && ["crate::", "super::", "self::"]
                .iter()
                .any(|p| rest.starts_with(p.as_bytes()))
        {
            let (found, end) = path_at(code, i, Vec::new());
            out.extend(found);
            i = end;
        } else {
            i += 1;
        }
    }
    out
}

/// The path(s) starting at byte `i`, after the segments `prefix`; returns them and the end.
fn path_at(code: &str, mut i: usize, mut prefix: Vec<String>) -> (Vec<Vec<String>>, usize) {
    let b = code.as_bytes();
    loop {
        let start = i;
        while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
            i += 1;
        }
        if i > start {
            prefix.push(code[start..i].to_string());
        }
        if b[i..].starts_with(b"::{") {
            i += 3;
            let mut found = Vec::new();
            loop {
                while i < b.len() && (b[i] as char).is_whitespace() {
                    i += 1;
                }
                if i >= b.len() || b[i] == b'}' {
                    return (found, i + 1);
                }
                let (items, end) = path_at(code, i, prefix.clone());
                found.extend(items);
                i = end;
                while i < b.len() && b[i] != b',' && b[i] != b'}' {
                    i += 1; // `as name`
                }
                if i < b.len() && b[i] == b',' {
                    i += 1;
                }
            }
        } else if b[i..].starts_with(b"::") {
            i += 2;
        } else {
            return (vec![prefix], i);
        }
    }
}

/// The module `path` (used from module `from`) names, if it is one of `known`.
fn target(from: &str, path: &[String], known: &BTreeSet<String>) -> Option<String> {
    let mut base: Vec<String> = if from.is_empty() {
        Vec::new()
    } else {
        from.split("::").map(String::from).collect()
    };
    let mut rest = path;
    match rest.first().map(String::as_str) {
        Some("crate") => {
            base.clear();
            rest = &rest[1..];
        }
        Some("self") => rest = &rest[1..],
        _ => {
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
        }
    }
    let full: Vec<String> = base.into_iter().chain(rest.iter().cloned()).collect();
    (1..=full.len())
        .rev()
        .map(|n| full[..n].join("::"))
        .find(|m| known.contains(m))
}

/// The module-level import graph's cycles (strongly connected components of 2+).
fn cycles(root: &Path) -> Vec<Vec<String>> {
    let mods = modules(root);
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let related = |a: &str, b: &str| {
        a == b
            || b.is_empty()
            || a.starts_with(&format!("{b}::"))
            || b.starts_with(&format!("{a}::"))
    };
    let edges: BTreeMap<String, BTreeSet<String>> = mods
        .iter()
        .map(|(m, code)| {
            let to = paths(code)
                .iter()
                .filter_map(|p| target(m, p, &known))
                .filter(|t| !related(m, t))
                .collect();
            (m.clone(), to)
        })
        .collect();
    // Reachability by repeated search: small graphs.
    let reach = |from: &String| {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.clone()];
        while let Some(m) = todo.pop() {
            for t in &edges[&m] {
                if seen.insert(t.clone()) {
                    todo.push(t.clone());
                }
            }
        }
        seen
    };
    let reach: BTreeMap<&String, BTreeSet<String>> = edges.keys().map(|m| (m, reach(m))).collect();
    let mut out: Vec<Vec<String>> = Vec::new();
    for m in edges.keys() {
        if !reach[m].contains(m) || out.iter().any(|c| c.contains(m)) {
            continue;
        }
        let comp: Vec<String> = edges
            .keys()
            .filter(|o| reach[m].contains(*o) && reach[*o].contains(m))
            .cloned()
            .collect();
        out.push(comp);
    }
    out
}

#[test]
fn the_path_reader_sees_every_form_of_use() {
    let code = "use crate::a::{b::{C, d}, e as f};\nlet σ = super::g::h(self::i::J);";
    let p: Vec<String> = paths(code).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        p,
        [
            "crate::a::b::C",
            "crate::a::b::d",
            "crate::a::e",
            "super::g::h",
            "self::i::J"
        ]
    );
    let known: BTreeSet<String> = ["a", "a::b", "g"].map(String::from).into();
    let t = |from: &str, s: &str| {
        target(
            from,
            &s.split("::").map(String::from).collect::<Vec<_>>(),
            &known,
        )
    };
    assert_eq!(t("x::y", "crate::a::b::C").as_deref(), Some("a::b"));
    assert_eq!(t("x", "super::g::h").as_deref(), Some("g"));
    assert_eq!(t("x", "super::q").as_deref(), None);
}

#[test]
fn a_cycle_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let w = |f: &str, s: &str| std::fs::write(dir.path().join(f), s).unwrap();
    w("lib.rs", "mod a; mod b; mod c;");
    w("a.rs", "use crate::b::X;");
    w(
        "b.rs",
        "use super::{c::Y};\n// use crate::a::Z; (a comment)",
    );
    w(
        "c.rs",
        "pub fn f() { crate::a::g() }\n#[cfg(test)]\nmod tests { use crate::b::X; }",
    );
    assert_eq!(cycles(dir.path()), vec![vec!["a", "b", "c"]]);
    w("c.rs", "pub fn f() {}");
    assert!(cycles(dir.path()).is_empty());
}

#[test]
fn no_module_imports_itself_through_others() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for krate in ["src", "imle/src", "imle-conv/src"] {
        let found = cycles(&root.join(krate));
        assert!(found.is_empty(), "{krate}: import circles {found:?}");
    }
}
