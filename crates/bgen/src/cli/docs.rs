//! `bgen docs`: the CLI and TOML references in `docs/`, generated from the clap and serde
//! definitions themselves so that they cannot drift from the code (a test fails when the files
//! in `docs/` differ from what this writes; `make docs` rewrites them).

use super::pipeline::RunConfig;
use anyhow::{Context, Result};
use clap::{Args, CommandFactory};
use std::fmt::Write;
use std::path::PathBuf;

#[derive(Args)]
pub struct DocsArgs {
    /// Directory to write cli.md and config.md into.
    #[arg(long, default_value = "docs")]
    out: PathBuf,
}

/// Writes `cli.md` and `config.md` into `args.out`.
pub fn run(args: DocsArgs) -> Result<()> {
    for (name, text) in [
        ("cli.md", cli_reference()),
        ("config.md", config_reference()),
    ] {
        let path = args.out.join(name);
        bgen_system::npy::write_atomic(&path, text.as_bytes())
            .with_context(|| format!("{}", path.display()))?;
        bgen_system::say!("{}", path.display());
    }
    Ok(())
}

/// Every subcommand's `--help`, in the order clap lists them.
pub fn cli_reference() -> String {
    let mut out = String::from(
        "# Command-line reference\n\n\
         Generated from bgen's clap definitions (`make docs`); a test fails when this file is \
         stale. The user guide (`guide.md`) shows the commands at work.\n",
    );
    let mut cli = super::Cli::command();
    cli.build();
    help_of(&mut cli, "bgen", &mut out);
    out
}

fn help_of(cmd: &mut clap::Command, path: &str, out: &mut String) {
    let help = cmd.render_long_help().to_string();
    let help: Vec<&str> = help.lines().map(str::trim_end).collect();
    let _ = write!(
        out,
        "\n## `{path}`\n\n```text\n{}\n```\n",
        help.join("\n").trim()
    );
    for sub in cmd.get_subcommands_mut() {
        if sub.get_name() != "help" {
            let name = format!("{path} {}", sub.get_name());
            help_of(sub, &name, out);
        }
    }
}

/// Every key of a `bgen run` TOML with its type, default and meaning, from [`RunConfig`]'s
/// serde defaults and doc comments.
pub fn config_reference() -> String {
    let schema = serde_json::to_value(schemars::schema_for!(RunConfig)).expect("a JSON schema");
    let defaults = serde_json::to_value(RunConfig::default()).expect("defaults serialise");
    let mut out = String::from(
        "# `bgen run` settings\n\n\
         Generated from `RunConfig` (`crates/bgen/src/cli/pipeline.rs`: its serde defaults and \
         doc comments; `make docs`); a test fails when this file is stale. Every key is \
         optional: a missing key takes its default, an unknown one is refused. A run writes \
         all of them to `OUT/config.toml`.\n\n\
         The defaults as a TOML file:\n\n```toml\n",
    );
    out.push_str(&toml::to_string(&RunConfig::default()).expect("defaults serialise"));
    out.push_str("```\n");
    table(&schema, &schema, &defaults, "", &mut out);
    out
}

/// One table per TOML table: key, type, default, meaning.
fn table(
    root: &serde_json::Value,
    node: &serde_json::Value,
    defaults: &serde_json::Value,
    prefix: &str,
    out: &mut String,
) {
    let title = if prefix.is_empty() {
        "top level".to_string()
    } else {
        format!("`[{prefix}]`")
    };
    let _ = write!(
        out,
        "\n## {title}\n\n| key | type | default | meaning |\n|---|---|---|---|\n"
    );
    let mut sections = Vec::new();
    let props = node["properties"].as_object().cloned().unwrap_or_default();
    for (key, prop) in &props {
        let prop = resolve(root, prop);
        if prop.get("properties").is_some() {
            sections.push((key.clone(), prop));
            continue;
        }
        let default = match &defaults[key] {
            serde_json::Value::Null => "none".to_string(),
            v => format!("`{v}`"),
        };
        let doc = prop["description"]
            .as_str()
            .unwrap_or("")
            .replace('\n', " ");
        let _ = writeln!(
            out,
            "| `{key}` | {} | {default} | {doc} |",
            type_of(root, &prop)
        );
    }
    for (key, prop) in sections {
        let name = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        table(root, &prop, &defaults[&key], &name, out);
    }
}

/// Follows a `$ref` (and a one-element `allOf` around one) to its definition.
fn resolve(root: &serde_json::Value, prop: &serde_json::Value) -> serde_json::Value {
    let mut prop = prop.clone();
    let own_doc = prop.get("description").cloned();
    if let Some(r) = prop["allOf"]
        .get(0)
        .filter(|_| prop["allOf"].as_array().map(Vec::len) == Some(1))
    {
        prop = r.clone();
    }
    if let Some(r) = prop["$ref"].as_str() {
        let name = r.rsplit('/').next().unwrap_or(r);
        let mut def = root["$defs"][name].clone();
        // The field's own doc, where it has one, over its type's.
        let doc = own_doc.or_else(|| prop.get("description").cloned());
        if let (Some(d), Some(obj)) = (doc, def.as_object_mut()) {
            obj.insert("description".into(), d);
        }
        return def;
    }
    prop
}

/// A short type name: number, integer, string, boolean, list of ..., one of `a`, `b`, optional.
fn type_of(root: &serde_json::Value, prop: &serde_json::Value) -> String {
    if let Some(values) = prop["enum"].as_array() {
        let names: Vec<String> = values
            .iter()
            .map(|v| format!("`{}`", v.as_str().unwrap_or("?")))
            .collect();
        return format!("one of {}", names.join(", "));
    }
    if let Some(any) = prop["anyOf"].as_array().or(prop["oneOf"].as_array()) {
        let variants: Vec<serde_json::Value> = any.iter().map(|p| resolve(root, p)).collect();
        let optional = variants.iter().any(|p| p["type"] == "null");
        let variants: Vec<&serde_json::Value> =
            variants.iter().filter(|p| p["type"] != "null").collect();
        // An enum whose variants carry their own docs: one `const` per variant.
        let consts: Option<Vec<String>> = variants
            .iter()
            .map(|p| p["const"].as_str().map(|c| format!("`{c}`")))
            .collect();
        let kind = match consts {
            Some(names) => format!("one of {}", names.join(", ")),
            None => variants
                .iter()
                .map(|p| type_of(root, p))
                .collect::<Vec<_>>()
                .join(" or "),
        };
        return match optional {
            true => format!("{kind}, optional"),
            false => kind,
        };
    }
    match &prop["type"] {
        serde_json::Value::String(t) if t == "array" => {
            format!("list of {}", type_of(root, &resolve(root, &prop["items"])))
        }
        serde_json::Value::String(t) => t.clone(),
        serde_json::Value::Array(ts) => {
            let kinds: Vec<&str> = ts
                .iter()
                .filter_map(|t| t.as_str())
                .filter(|t| *t != "null")
                .collect();
            match ts.iter().any(|t| t == "null") {
                true => format!("{}, optional", kinds.join(" or ")),
                false => kinds.join(" or "),
            }
        }
        _ => "any".into(),
    }
}
