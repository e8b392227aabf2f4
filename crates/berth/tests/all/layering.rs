//! The layering DESIGN.md and docs/architecture.md describe, checked on the sources: nodes see
//! only the node protocol, the domain holds no raw JSON in its public types, and the API's
//! functions stay short.

use std::path::{Path, PathBuf};
use syn::visit::Visit;

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .join(name)
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The workspace crates a crate depends on (normal dependencies).
fn berth_dependencies(name: &str) -> Vec<String> {
    let manifest = std::fs::read_to_string(crate_dir(name).join("Cargo.toml")).unwrap();
    let mut section = String::new();
    let mut out = Vec::new();
    for line in manifest.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if section == "[dependencies]"
            && line.starts_with("berth-")
            && let Some(dep) = line.split(['.', ' ', '=']).next()
        {
            out.push(dep.to_string());
        }
    }
    out
}

#[test]
fn layering_nodes_depend_only_on_the_node_protocol() {
    for node in ["berth-agent", "berth-lb"] {
        let deps = berth_dependencies(node);
        let wrong: Vec<&String> = deps
            .iter()
            .filter(|d| !matches!(d.as_str(), "berth-node-api" | "berth-aws"))
            .collect();
        assert!(
            wrong.is_empty(),
            "{node} depends on {wrong:?}: a node sees only berth-node-api (and SigV4 from berth-aws)"
        );
    }
}

/// Public items whose types mention `serde_json::Value`.
struct RawJson<'a> {
    file: &'a Path,
    /// The file imports `Value` from serde_json.
    imported: bool,
    found: Vec<String>,
}

impl RawJson<'_> {
    fn check(&mut self, what: String, tokens: impl quote::ToTokens) {
        let text = tokens.to_token_stream().to_string();
        let bare = self.imported && words(&tokens).iter().any(|w| w == "Value");
        if text.contains("serde_json :: Value") || bare {
            self.found.push(format!("{}: {what}", self.file.display()));
        }
    }

    fn check_signature(&mut self, sig: &syn::Signature) {
        for input in &sig.inputs {
            self.check(format!("fn {}", sig.ident), input);
        }
        self.check(format!("fn {}", sig.ident), &sig.output);
    }
}

fn public(v: &syn::Visibility) -> bool {
    matches!(v, syn::Visibility::Public(_))
}

/// The words of some tokens.
fn words(tokens: &impl quote::ToTokens) -> Vec<String> {
    tokens
        .to_token_stream()
        .to_string()
        .split(|c: char| !c.is_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_string)
        .collect()
}

fn is_test_module(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && words(a).iter().any(|w| w == "test"))
}

impl<'ast> Visit<'ast> for RawJson<'_> {
    fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
        if !is_test_module(&m.attrs) {
            syn::visit::visit_item_mod(self, m);
        }
    }
    fn visit_item_struct(&mut self, s: &'ast syn::ItemStruct) {
        if public(&s.vis) {
            for f in s.fields.iter().filter(|f| public(&f.vis)) {
                self.check(format!("struct {}", s.ident), &f.ty);
            }
        }
    }
    fn visit_item_enum(&mut self, e: &'ast syn::ItemEnum) {
        if public(&e.vis) {
            for v in &e.variants {
                self.check(format!("enum {}::{}", e.ident, v.ident), &v.fields);
            }
        }
    }
    fn visit_item_fn(&mut self, f: &'ast syn::ItemFn) {
        if public(&f.vis) {
            self.check_signature(&f.sig);
        }
    }
    fn visit_impl_item_fn(&mut self, f: &'ast syn::ImplItemFn) {
        if public(&f.vis) {
            self.check_signature(&f.sig);
        }
    }
    fn visit_item_type(&mut self, t: &'ast syn::ItemType) {
        if public(&t.vis) {
            self.check(format!("type {}", t.ident), &t.ty);
        }
    }
    fn visit_item_trait(&mut self, t: &'ast syn::ItemTrait) {
        if public(&t.vis) {
            for item in &t.items {
                if let syn::TraitItem::Fn(f) = item {
                    self.check_signature(&f.sig);
                }
            }
        }
    }
}

#[test]
fn layering_the_domain_holds_no_raw_json_in_its_public_types() {
    let mut found = Vec::new();
    for name in ["berth-types", "berth-control"] {
        for file in sources(&crate_dir(name).join("src")) {
            let text = std::fs::read_to_string(&file).unwrap();
            let ast = syn::parse_file(&text).unwrap();
            let imported = ast.items.iter().any(|i| {
                matches!(i, syn::Item::Use(u) if {
                    let w = words(u);
                    w.iter().any(|w| w == "serde_json") && w.iter().any(|w| w == "Value")
                })
            });
            let mut v = RawJson {
                file: &file,
                imported,
                found: Vec::new(),
            };
            v.visit_file(&ast);
            found.extend(v.found);
        }
    }
    assert!(
        found.is_empty(),
        "public types that carry raw JSON (use the typed shapes of berth_types::shapes):\n{}",
        found.join("\n")
    );
}

/// The longest a function in `berth-api` may be, in lines (signature to closing brace).
const MAX_API_FN_LINES: usize = 80;

/// Functions of rustfmt-formatted source longer than `max` lines: `(line, name, length)`.
fn long_functions(text: &str, max: usize) -> Vec<(usize, String, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let body = line.trim_start();
        let indent = &line[..line.len() - body.len()];
        let Some(name) = body
            .split("fn ")
            .nth(1)
            .filter(|_| {
                let head = body.split("fn ").next().unwrap_or("");
                head.split_whitespace().all(|w| {
                    matches!(w, "pub" | "async" | "const" | "unsafe" | "extern")
                        || w.starts_with("pub(")
                })
            })
            .and_then(|rest| rest.split(['(', '<', ' ']).next())
        else {
            continue;
        };
        let close = format!("{indent}}}");
        // A one-line function, a declaration without a body, or up to the brace that closes
        // at the signature's indentation.
        let one_line = body.ends_with('}') || body.ends_with(';');
        let Some(end) = (i..lines.len()).find(|&j| one_line || lines[j] == close) else {
            continue;
        };
        let length = end - i + 1;
        if length > max {
            out.push((i + 1, name.to_string(), length));
        }
    }
    out
}

#[test]
fn layering_api_functions_stay_short() {
    let sample =
        "fn short() {\n    a();\n}\n\npub async fn long() {\n    a();\n    b();\n    c();\n}\n";
    assert_eq!(long_functions(sample, 4), vec![(5, "long".to_string(), 5)]);
    let mut found = Vec::new();
    for file in sources(&crate_dir("berth-api").join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, name, length) in long_functions(&text, MAX_API_FN_LINES) {
            found.push(format!(
                "{}:{line}: fn {name} is {length} lines",
                file.display()
            ));
        }
    }
    assert!(
        found.is_empty(),
        "berth-api functions over {MAX_API_FN_LINES} lines:\n{}",
        found.join("\n")
    );
}
