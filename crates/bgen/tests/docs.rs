//! docs/cli.md and docs/config.md are generated from the clap and serde definitions
//! (`bgen docs`, `make docs`): this fails when either is stale, so the references cannot drift
//! from the code.

use std::path::Path;

#[test]
fn generated_references_are_current() {
    let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs");
    for (name, want) in [
        ("cli.md", bgen::cli::docs::cli_reference()),
        ("config.md", bgen::cli::docs::config_reference()),
    ] {
        let path = docs.join(name);
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "{} is stale: run `make docs` (bgen docs --out docs) and commit it",
            path.display()
        );
    }
}

/// Every key of a `bgen run` TOML is documented: the reference has no empty meaning.
#[test]
fn every_config_key_has_a_meaning() {
    let text = bgen::cli::docs::config_reference();
    let undocumented: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("| `") && l.ends_with("|  |"))
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys without a doc comment: {undocumented:?}"
    );
}
