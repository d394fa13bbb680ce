//! Owns the check of core's layering (core/src/lib.rs, README "Layout"): each file of
//! core/src imports only its own layer and the layers below it, and no module imports one that
//! imports it back. It reads the sources: `crate::` and `super::` paths are the imports.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The layers from the bottom up.
const LAYERS: &[&str] =
    &["error", "wire", "db", "model", "store", "trust", "capture", "merge", "exchange", "functions", "lib"];

/// Every module of core/src by its path without `.rs` (`store/log`; a folder's `mod.rs` is the
/// folder, `store`), with its source minus comments and test modules.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_stem().unwrap().to_string_lossy().to_string();
            if path.is_dir() {
                walk(&path, &format!("{prefix}{name}/"), out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let module =
                    if name == "mod" { prefix.trim_end_matches('/').to_string() } else { format!("{prefix}{name}") };
                out.insert(module, code(&std::fs::read_to_string(&path).unwrap()));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), "", &mut out);
    out
}

/// The source without `//` comments and without what follows `#[cfg(test)]` (test modules
/// sit at the end of a file and may import anything).
fn code(src: &str) -> String {
    let src = src.split("#[cfg(test)]").next().unwrap();
    src.lines().map(|l| l.split("//").next().unwrap()).collect::<Vec<_>>().join("\n")
}

/// The module paths a source imports: `crate::a::b::{c, d::e}` gives `a/b/c`, `a/b/d`; `super::x`
/// in a module of folder `f` gives `f/x`. Each is cut to the longest prefix that is a module.
fn imports(module: &str, src: &str, known: &BTreeSet<String>) -> Vec<String> {
    let folder = match module.rsplit_once('/') {
        Some((f, _)) => f.to_string(),
        None => String::new(),
    };
    let mut out = Vec::new();
    for (root, base) in [("crate::", String::new()), ("super::", folder)] {
        let mut rest = src;
        while let Some(at) = rest.find(root) {
            rest = &rest[at + root.len()..];
            for path in expand(rest) {
                let full = if base.is_empty() { path } else { format!("{base}/{path}") };
                let mut parts: Vec<&str> = full.split('/').collect();
                while !parts.is_empty() && !known.contains(&parts.join("/")) {
                    parts.pop();
                }
                let target = parts.join("/");
                assert!(
                    !target.is_empty(),
                    "{module}: imports `{root}{full}`, which is not a module path (name the module that owns it)"
                );
                out.push(target);
            }
        }
    }
    out
}

/// The paths (segments joined by `/`) at the start of `s`: `a::b::{c, d::e}` → `a/b/c`, `a/b/d/e`.
fn expand(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_')).unwrap_or(rest.len());
        if end == 0 {
            break;
        }
        segs.push(&rest[..end]);
        rest = &rest[end..];
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    let prefix = segs.join("/");
    if !rest.starts_with('{') {
        return vec![prefix];
    }
    // A group: split at top-level commas.
    let (mut depth, mut start, mut out) = (0, 1, Vec::new());
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' | ',' if depth == 1 => {
                let item = rest[start..i].trim();
                let join = |p: String| if prefix.is_empty() { p } else { format!("{prefix}/{p}") };
                match item {
                    "" => {}
                    "self" => out.push(prefix.clone()),
                    _ => out.extend(expand(item).into_iter().map(join)),
                }
                start = i + 1;
                if c == '}' {
                    break;
                }
            }
            '}' => depth -= 1,
            _ => {}
        }
    }
    out
}

fn layer(module: &str) -> usize {
    let top = module.split('/').next().unwrap();
    LAYERS.iter().position(|l| *l == top).unwrap_or_else(|| panic!("module {module} is in no layer of {LAYERS:?}"))
}

#[test]
fn each_layer_imports_only_the_layers_below_it() {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut wrong = Vec::new();
    for (m, src) in &mods {
        for target in imports(m, src, &known) {
            if layer(&target) > layer(m) {
                wrong.push(format!("{m} imports {target}, a layer above it"));
            }
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn no_module_imports_one_that_imports_it_back() {
    let mods = modules();
    let known: BTreeSet<String> = mods.keys().cloned().collect();
    let mut graph: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for (m, src) in &mods {
        let edges = graph.entry(m).or_default();
        edges.extend(imports(m, src, &known).into_iter().filter(|t| t != m));
        // A folder's mod.rs stands for its children (it declares and re-exports them).
        edges.extend(known.iter().filter(|k| k.strip_prefix(m.as_str()).is_some_and(|r| r.starts_with('/'))).cloned());
    }
    // Depth-first search; a node met again while on the stack closes a cycle.
    fn visit<'a>(
        n: &'a str,
        graph: &'a BTreeMap<&str, BTreeSet<String>>,
        stack: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|s| *s == n) {
            return Some(stack[at..].iter().map(|s| s.to_string()).chain([n.to_string()]).collect());
        }
        if !done.insert(n) {
            return None;
        }
        stack.push(n);
        for next in graph.get(n).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, stack, done) {
                return Some(cycle);
            }
        }
        stack.pop();
        None
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        if let Some(cycle) = visit(m, &graph, &mut Vec::new(), &mut done) {
            panic!("import cycle: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_reader_finds_imports_as_written() {
    let known: BTreeSet<String> =
        ["store", "store/log", "store/runs", "wire", "db", "db/hot"].iter().map(|s| s.to_string()).collect();
    let src = "use super::{log::{self, head}, runs};\nuse crate::db::hot::{Arg, Hot};\nlet x = crate::wire::shown(s);";
    let mut got = imports("store/format", src, &known);
    got.sort();
    assert_eq!(got, ["db/hot", "db/hot", "store/log", "store/log", "store/runs", "wire"]);
}
