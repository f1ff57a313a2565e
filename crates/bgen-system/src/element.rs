//! Chemical elements of biomolecules.

use std::fmt;

/// A chemical element (the ones that occur in proteins, nucleic acids, ions and common ligands).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Element {
    H,
    C,
    N,
    O,
    F,
    Na,
    Mg,
    Si,
    P,
    S,
    Cl,
    K,
    Ca,
    Zn,
    Br,
    I,
}

impl Element {
    /// Parses an element symbol, case-insensitively ("H", "CL", "Cl").
    pub fn from_symbol(s: &str) -> Option<Element> {
        use Element::*;
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "H" | "D" => H,
            "C" => C,
            "N" => N,
            "O" => O,
            "F" => F,
            "NA" => Na,
            "MG" => Mg,
            "SI" => Si,
            "P" => P,
            "S" => S,
            "CL" => Cl,
            "K" => K,
            "CA" => Ca,
            "ZN" => Zn,
            "BR" => Br,
            "I" => I,
            _ => return None,
        })
    }

    /// Guesses the element from a PDB atom name when the element columns are empty
    /// (first letter after leading digits: "1HB" -> H, "CA" -> C for atoms of standard residues).
    pub fn guess_from_atom_name(name: &str) -> Option<Element> {
        let letters: String = name
            .trim()
            .chars()
            .skip_while(|c| c.is_ascii_digit())
            .collect();
        letters.get(0..1).and_then(Element::from_symbol)
    }

    /// Standard atomic mass in Da.
    pub fn mass(self) -> f64 {
        use Element::*;
        match self {
            H => 1.007947,
            C => 12.01078,
            N => 14.00672,
            O => 15.99943,
            F => 18.99840320,
            Na => 22.98976928,
            Mg => 24.3050,
            Si => 28.0855,
            P => 30.973762,
            S => 32.065,
            Cl => 35.453,
            K => 39.0983,
            Ca => 40.078,
            Zn => 65.409,
            Br => 79.904,
            I => 126.90447,
        }
    }

    /// The symbol as written in PDB files ("C", "Cl").
    pub fn symbol(self) -> &'static str {
        use Element::*;
        match self {
            H => "H",
            C => "C",
            N => "N",
            O => "O",
            F => "F",
            Na => "Na",
            Mg => "Mg",
            Si => "Si",
            P => "P",
            S => "S",
            Cl => "Cl",
            K => "K",
            Ca => "Ca",
            Zn => "Zn",
            Br => "Br",
            I => "I",
        }
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.symbol())
    }
}
