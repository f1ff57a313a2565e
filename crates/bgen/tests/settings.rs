//! One source per default: each stage's settings type holds its defaults once, and the command
//! line (clap), Python's configs (serde from the same type) and `bgen run`'s TOML (whose
//! sections take their defaults from the stage types) must agree with it. A default changed
//! in one place only fails here.

use bgen::cli::{Cli, Command};
use bgen::system::SystemArgs;
use clap::Parser;

fn parse(args: &[&str]) -> Command {
    Cli::try_parse_from(std::iter::once("bgen").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .command
}

fn json(v: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap()
}

/// The typed stage settings that `bgen run` and the library build ([`SampleArgs::new`] etc.)
/// equal what the command line gives for the same required options: one set of defaults.
#[test]
fn typed_stage_defaults_equal_the_command_line() {
    use bgen::cli::{Cli, Command};
    use bgen::eval::stage::EvalArgs;
    use bgen::md::stage::{DatasetCommand, MdArgs, SplitArgs};
    use bgen::models::stage::TrainArgs;
    use bgen::sample::stage::SampleArgs;
    use bgen_system::SystemArgs;
    use clap::Parser;
    let parse = |args: &[&str]| {
        Cli::try_parse_from(std::iter::once("bgen").chain(args.iter().copied()))
            .unwrap()
            .command
    };
    let debug = |c: Command| match c {
        Command::Sample(a) => format!("{a:?}"),
        Command::Train(a) => format!("{a:?}"),
        Command::Eval(a) => format!("{a:?}"),
        Command::Md(a) => format!("{a:?}"),
        Command::Dataset(DatasetCommand::Split(a)) => format!("{a:?}"),
        _ => unreachable!(),
    };
    let p = |s: &str| std::path::PathBuf::from(s);
    let aldp = SystemArgs {
        system: Some("aldp".into()),
        ..Default::default()
    };
    for (cli, typed) in [
        (
            vec!["sample", "--run", "R", "--out", "O"],
            format!("{:?}", SampleArgs::new(p("R"), p("O"))),
        ),
        (
            vec!["train", "--data", "D", "--out", "O"],
            format!("{:?}", TrainArgs::new(p("D"), p("O"))),
        ),
        (
            vec![
                "eval",
                "--system",
                "aldp",
                "--samples",
                "S",
                "--reference",
                "R",
                "--out",
                "O",
            ],
            format!("{:?}", EvalArgs::new(aldp.clone(), p("S"), p("R"), p("O"))),
        ),
        (
            vec!["md", "--system", "aldp", "--out", "O"],
            format!("{:?}", MdArgs::new(aldp.clone(), p("O"))),
        ),
        (
            vec!["dataset", "split", "--run", "R", "--out", "O"],
            format!("{:?}", SplitArgs::new(p("R"), p("O"))),
        ),
    ] {
        assert_eq!(debug(parse(&cli)), typed, "{cli:?}");
    }
}

/// Python's `bgen.SampleConfig(run=..., out=...)` is serde's reading of the given keys over the
/// type's `Default`: the same values as the command line's.
#[test]
fn python_configs_default_to_the_same_values() {
    let s: bgen::sample::SampleArgs =
        serde_json::from_value(serde_json::json!({"run": "r", "out": "o"})).unwrap();
    let want = bgen::sample::SampleArgs::new("r".into(), "o".into());
    assert_eq!(json(&s), json(&want));
    let t: bgen::models::TrainArgs =
        serde_json::from_value(serde_json::json!({"data": "d", "out": "o"})).unwrap();
    assert_eq!(
        json(&t),
        json(&bgen::models::TrainArgs::new("d".into(), "o".into()))
    );
}

/// `bgen run`'s TOML sections default to what the stages default to (but for the choices the
/// pipeline makes on purpose: 3,000 training steps, a replica-exchange ladder, its MD seed).
#[test]
fn the_run_toml_defaults_are_the_stages_defaults() {
    let c = bgen::cli::pipeline::RunConfig::default();
    let s = bgen::sample::SampleArgs::new("r".into(), "o".into());
    assert_eq!(c.sample.smc_steps, s.steps);
    assert_eq!(c.sample.smc_moves, s.moves);
    assert_eq!(c.sample.cess, Some(s.cess));
    assert_eq!(c.sample.independence, s.independence);
    assert_eq!(s.final_rounds, None);
    assert_eq!(c.sample.mala, !s.ula);
    assert_eq!(
        (c.sample.tau, c.sample.com, c.sample.seed),
        (s.tau, s.com, s.seed)
    );
    use bgen::sample::{
        stage::{default_final_rounds, default_n},
        Method,
    };
    assert_eq!(c.sample.final_rounds, default_final_rounds(Method::Smc));
    assert_eq!(c.sample.n, default_n(Method::Snis));
    assert_eq!(c.sample.smc_particles, default_n(Method::Smc));
    assert_eq!(c.sample.twisted_particles, default_n(Method::Twisted));
    let t = bgen::models::TrainArgs::new("d".into(), "o".into());
    assert_eq!(Some(c.train.model), Some(t.model.unwrap_or_default()));
    assert_eq!(c.train.coords, t.coords);
    assert_eq!(c.train.device, t.device);
    assert_eq!(c.train.checkpoint_secs, t.checkpoint_secs);
    let e = bgen::eval::EvalArgs::new(
        SystemArgs::named("aldp"),
        "s".into(),
        "r".into(),
        "o".into(),
    );
    assert_eq!(
        (c.eval.max_samples, c.eval.tica_lag),
        (e.max_samples, e.tica_lag)
    );
}

/// A closed choice outside its values is refused by name wherever it comes from, and `cuda:N`
/// parses the same in the TOML as on the command line.
#[test]
fn closed_choices_are_refused_in_one_place() {
    let bad = bgen::cli::pipeline::check_config("[train]\nmodel = \"flow\"\n").unwrap_err();
    let msg = format!("{bad:#}");
    assert!(
        msg.contains("unknown variant `flow`") && msg.contains("expected `tarflow` or `arbg`"),
        "{msg}"
    );
    let bad = bgen::cli::pipeline::check_config("[sample]\nmethods = [\"mcmc\"]\n").unwrap_err();
    let msg = format!("{bad:#}");
    assert!(
        msg.contains("unknown variant `mcmc`") && msg.contains("expected one of `proposal`"),
        "{msg}"
    );
    let bad = bgen::cli::pipeline::check_config("[train]\ndevice = \"gpu\"\n").unwrap_err();
    assert!(
        format!("{bad:#}").contains("cpu, cuda or cuda:N"),
        "{bad:#}"
    );
    let c = bgen::cli::pipeline::check_config("[train]\ndevice = \"cuda:1\"\n").unwrap();
    let Command::Train(t) = parse(&["train", "--data", "d", "--out", "o", "--device", "cuda:1"])
    else {
        panic!()
    };
    assert_eq!(c.train.device, t.device);
    let err = Cli::try_parse_from(["bgen", "sample", "--run", "r", "--out", "o", "--com", "x"])
        .err()
        .unwrap();
    assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue, "{err}");
}

/// The library's SNIS defaults are `bgen sample`'s: a library user gets the command line's
/// numbers (they once dropped the top 0.2% of weights where the CLI truncated them instead).
#[test]
fn the_library_snis_defaults_equal_the_command_lines() {
    let a = bgen::sample::SampleArgs::new("r".into(), "o".into());
    let d = bgen::sample::SnisOptions::default();
    assert_eq!(d.drop_top, a.drop_top);
    assert_eq!(d.energy_cutoff, a.energy_cutoff);
    assert_eq!(d.truncate, !a.no_truncate);
}
