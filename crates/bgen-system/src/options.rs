//! The options every stage shares: which system ([`SystemArgs`]), and the checks of user-given
//! numbers. Each check is a plain function from text (a clap value parser, so that the command
//! line refuses a bad value by name before any work starts, and negative numbers reach the check
//! instead of being taken for flags) with a twin on parsed values ([`check`]) that the typed
//! configs use when they come from TOML or Python.

use crate::{Setup, System};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::str::FromStr;

/// `Display` for closed choices (clap `ValueEnum`s): the name the command line, TOML and Python
/// use, e.g. `display_as_value!(Family, Coords);`.
#[macro_export]
macro_rules! display_as_value {
    ($($t:ty),*) => {$(
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                $crate::options::write_value(self, f)
            }
        }
    )*};
}

/// Writes a closed choice's command-line name (see [`display_as_value!`]).
pub fn write_value<T: clap::ValueEnum>(v: &T, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
    let v = v.to_possible_value().expect("no skipped variants");
    f.write_str(v.get_name())
}

/// Which molecule, under which force field and temperature (shared by the stages).
#[derive(clap::Args, Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SystemArgs {
    /// Embedded system (aldp, ala3, ala4, ala6, chignolin).
    #[arg(long, conflicts_with = "pdb")]
    pub system: Option<String>,
    /// PDB file with hydrogens.
    #[arg(long)]
    pub pdb: Option<PathBuf>,
    /// Force field: amber99sbildn-obc2 or amber14-obc1 (default: the system's own; amber14-obc1 for a PDB).
    #[arg(long)]
    pub forcefield: Option<String>,
    /// Temperature, K (default: the force field's, 300 or 310 K; sets kT).
    #[arg(long, value_parser = positive, allow_hyphen_values = true)]
    pub temperature: Option<f64>,
}

impl SystemArgs {
    /// An embedded system at its own force field and temperature.
    pub fn named(name: &str) -> SystemArgs {
        SystemArgs {
            system: Some(name.into()),
            ..Default::default()
        }
    }

    /// Builds the system of `pdb`/`system` with `forcefield` and `temperature`.
    pub fn load(&self) -> crate::Result<System> {
        if let Some(t) = self.temperature {
            check::positive("temperature", t)?;
        }
        let setup = self
            .forcefield
            .as_deref()
            .map(Setup::from_name)
            .transpose()?;
        Ok(match (&self.pdb, &self.system) {
            (Some(p), _) => {
                System::from_pdb_file(p, setup.unwrap_or(Setup::Amber14Obc1), self.temperature)?
            }
            (None, Some(name)) => System::named(name, setup, self.temperature)?,
            (None, None) => crate::bail!("give --pdb FILE or --system NAME"),
        })
    }

    /// The system's label: its name, or the PDB's path.
    pub fn label(&self) -> String {
        match (&self.system, &self.pdb) {
            (_, Some(p)) => p.display().to_string(),
            (Some(n), None) => n.clone(),
            (None, None) => String::new(),
        }
    }
}

/// The same checks on values already parsed (from TOML, JSON or Python), naming the setting.
pub mod check {
    /// A finite number > 0.
    pub fn positive(name: &str, v: f64) -> Result<(), String> {
        super::positive(&v.to_string())
            .map(|_| ())
            .map_err(|e| format!("{name} = {e}"))
    }
    /// A finite number >= 0.
    pub fn non_negative(name: &str, v: f64) -> Result<(), String> {
        super::non_negative(&v.to_string())
            .map(|_| ())
            .map_err(|e| format!("{name} = {e}"))
    }
    /// A fraction in [0, 1).
    pub fn fraction(name: &str, v: f64) -> Result<(), String> {
        super::fraction(&v.to_string())
            .map(|_| ())
            .map_err(|e| format!("{name} = {e}"))
    }
    /// A whole number >= 1.
    pub fn count(name: &str, v: i64) -> Result<(), String> {
        match v >= 1 {
            true => Ok(()),
            false => Err(format!("{name} = {v}: must be at least 1")),
        }
    }
    /// Worker threads: 1 to [`super::MAX_THREADS`].
    pub fn threads(name: &str, v: i64) -> Result<(), String> {
        super::threads(&v.to_string())
            .map(|_| ())
            .map_err(|e| format!("{name} = {e}"))
    }
}

fn number(s: &str) -> Result<f64, String> {
    s.trim()
        .parse::<f64>()
        .map_err(|_| format!("'{s}' is not a number"))
}

/// The entries of a list file a user wrote (a sequences file, an `--oversample` file): each
/// line's text before any `#`, trimmed, with its line number (from 1); blank lines skipped, and
/// a leading byte-order mark (editors on Windows write one) not part of the first line.
pub fn list_lines(text: &str) -> impl Iterator<Item = (usize, &str)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    (text.lines().enumerate())
        .map(|(k, l)| (k + 1, l.split('#').next().unwrap_or("").trim()))
        .filter(|(_, l)| !l.is_empty())
}

/// A time span of `secs` seconds (a checked finite number > 0), saturating: 1e300 s is
/// forever, not a panic.
pub fn seconds(secs: f64) -> std::time::Duration {
    std::time::Duration::try_from_secs_f64(secs).unwrap_or(std::time::Duration::MAX)
}

/// The cores this process may use: the default number of worker threads of `bgen train` and
/// `bgen sample`.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// A finite number > 0.
pub fn positive(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v.is_finite() && v > 0.0 {
        Ok(v)
    } else {
        Err(format!("{s}: must be a finite number > 0"))
    }
}

/// A finite number >= 0.
pub fn non_negative(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("{s}: must be a finite number >= 0"))
    }
}

/// A fraction in [0, 1).
pub fn fraction(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s}: must lie in [0, 1)"))
    }
}

/// A fraction in [0, 1].
pub fn closed_fraction(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v)
    } else {
        Err(format!("{s}: must lie in [0, 1]"))
    }
}

/// Any finite number.
pub fn finite(s: &str) -> Result<f64, String> {
    let v = number(s)?;
    if v.is_finite() {
        Ok(v)
    } else {
        Err(format!("{s}: must be a finite number"))
    }
}

/// The most worker threads a stage takes: far more than cores only slows a run down (10,000
/// threads took a 1 ps MD run past a minute), and a typo of a few zeros should not do that.
pub const MAX_THREADS: usize = 1024;

/// Worker threads: a whole number from 1 to [`MAX_THREADS`].
pub fn threads(s: &str) -> Result<usize, String> {
    let v: usize = count(s)?;
    match v <= MAX_THREADS {
        true => Ok(v),
        false => Err(format!("{s}: at most {MAX_THREADS} threads")),
    }
}

/// A whole number >= 1.
pub fn count<T: FromStr + PartialOrd + From<u8>>(s: &str) -> Result<T, String> {
    let v: T = s
        .trim()
        .parse()
        .map_err(|_| format!("'{s}' is not a whole number"))?;
    if v >= T::from(1) {
        Ok(v)
    } else {
        Err(format!("{s}: must be at least 1"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers_refuse_what_would_break_a_run() {
        for bad in ["0", "-1", "nan", "inf", "x"] {
            assert!(positive(bad).is_err(), "{bad}");
        }
        assert_eq!(positive("2.5"), Ok(2.5));
        assert!(non_negative("-0.1").is_err() && non_negative("0") == Ok(0.0));
        assert!(fraction("1").is_err() && fraction("2").is_err() && fraction("0") == Ok(0.0));
        assert!(closed_fraction("1") == Ok(1.0) && closed_fraction("1.1").is_err());
        assert!(finite("inf").is_err() && finite("-3") == Ok(-3.0));
        assert!(count::<usize>("0").is_err() && count::<usize>("-1").is_err());
        assert_eq!(count::<i64>("3"), Ok(3));
    }
}
