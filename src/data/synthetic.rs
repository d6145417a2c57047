//! The embedded default data set: seeded synthetic crystals with a
//! physically motivated high-frequency dielectric tensor ε∞.
//!
//! Structures come from prototypes of all seven crystal systems (rock salt,
//! CsCl, zinc blende, fluorite and perovskite; wurtzite, NiAs and 1H layers;
//! rhombohedral and 1T layers; rutile, tetragonal perovskite and isolated
//! chains; strained orthorhombic, sheared monoclinic and general triclinic
//! cells), with random elements and lattice constants set from ionic radii.
//!
//! ε∞ comes from a bond-polarisability model ([`dielectric_model`]): every
//! bond i–j adds `α∥ r̂r̂ᵀ + α⊥ (I − r̂r̂ᵀ)`, the sum over the cell divided by
//! the volume is the polarisability density P (dimensionless), and the
//! Clausius–Mossotti local-field correction gives
//! `ε = (I + 8π/3 P)(I − 4π/3 P)⁻¹`, evaluated on the eigenvalues of P (with
//! 4π/3 P saturating smoothly below 0.9, so ε stays finite). The
//! tensor is a function of the set of bond vectors only, so it is symmetric,
//! rotates with the structure and has the point symmetry of the crystal
//! (Neumann's principle): cubic crystals come out isotropic.
//!
//! Determinism: each structure `k` draws from its own ChaCha8 stream
//! `(seed, k)`, uniform numbers are built from raw 64-bit words, and the
//! geometry uses only `+ − × ÷ √`, which IEEE 754 rounds exactly, so the
//! same seed gives the same bytes on every platform; the first `k` structures
//! of a larger set equal a smaller set with the same seed.

use rand::RngCore;
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha8Rng;

use crate::crystal::io::Frame;
use crate::crystal::neighbors::neighbor_list;
use crate::crystal::Structure;
use crate::e3::cartesian::Mat3;
use crate::e3::sym3::eigen_sym3;

/// Bump when the generator's output changes, so that caches built from an
/// older synthetic set are rebuilt.
pub const GENERATOR_VERSION: u32 = 1;

/// Smallest allowed interatomic distance (periodic images included), Å.
pub const MIN_DISTANCE: f64 = 1.5;
/// Largest number of atoms in a generated cell.
pub const MAX_ATOMS: usize = 40;

/// `n` synthetic crystals with their ε∞, reproducible from `seed`.
///
/// Frame `k` has id `synthetic-<seed>-<k>-<prototype>` and the line number it
/// would have in the extxyz file [`crate::crystal::io::write_extxyz`] writes.
pub fn generate(n: usize, seed: u64) -> Vec<Frame> {
    let mut line = 1;
    (0..n)
        .map(|k| {
            let (prototype, structure) = crystal(seed, k as u64);
            let dielectric = dielectric_model(&structure);
            let frame = Frame {
                dielectric: Some(dielectric),
                id: Some(format!("synthetic-{seed}-{k}-{prototype}")),
                line,
                structure,
            };
            line += frame.structure.len() + 2;
            frame
        })
        .collect()
}

/// Structure `index` of the set with `seed`, with the name of its prototype.
pub fn crystal(seed: u64, index: u64) -> (&'static str, Structure) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(index);
    let mut draw = Draw(rng);
    loop {
        let system = draw.weighted(&SYSTEM_WEIGHTS);
        let prototypes = PROTOTYPES[system];
        let (name, build) = prototypes[draw.index(prototypes.len())];
        let structure = build(&mut draw);
        if (2..=MAX_ATOMS).contains(&structure.len()) && shortest_distance(&structure) >= MIN_DISTANCE {
            return (name, structure);
        }
    }
}

// ---------------------------------------------------------------------------
// Dielectric model

/// Electronic polarisability (Å³) and radius (Å) the model uses for element
/// `z`; elements outside the generator's table get a generic ion.
pub fn element_model(z: u8) -> (f64, f64) {
    ELEMENTS.iter().find(|e| e.z == z).map_or((1.0, 1.2), |e| (e.polarisability, e.radius))
}

/// Bond anisotropy at the reference bond length: α∥ = ā(1 + 2η), α⊥ = ā(1 − η).
const BOND_ANISOTROPY: f64 = 0.45;
/// Bonds reach out to this multiple of the sum of the two radii.
const BOND_REACH: f64 = 1.4;
/// Largest local-field factor 4π/3 · p after saturation, keeps ε finite (≤ 28).
const FIELD_CAP: f64 = 0.9;

/// ε∞ of a structure in the bond-polarisability + Clausius–Mossotti model
/// (symmetric 3×3, Cartesian, eigenvalues ≥ 1).
///
/// Each atom's polarisability α_i is shared among its bonds with weights
/// `s(r) = (r₀/r)⁶ (1 − (r/r_c)²)²` (r₀ = R_i + R_j, r_c = 1.4 r₀), so the
/// polarisability per cell is conserved and a bond's share decays with its
/// length; a bond is more polarisable along its axis, by a factor that also
/// decays with length. An atom without bonds keeps an isotropic α_i.
pub fn dielectric_model(structure: &Structure) -> Mat3 {
    let params: Vec<(f64, f64)> = structure.numbers.iter().map(|&z| element_model(z)).collect();
    let reach = params.iter().map(|p| p.1).fold(0.0, f64::max) * 2.0 * BOND_REACH;
    let edges = neighbor_list(structure, reach, false);
    let weight = |i: usize, j: usize, r: f64| {
        let r0 = params[i].1 + params[j].1;
        let rc = BOND_REACH * r0;
        if r >= rc {
            return 0.0;
        }
        let q = r0 / r;
        let q3 = q * q * q;
        let t = 1.0 - (r / rc) * (r / rc);
        q3 * q3 * t * t
    };
    let lengths: Vec<f64> = edges.vectors.iter().map(norm).collect();
    let mut coordination = vec![0.0; structure.len()];
    for (e, &r) in lengths.iter().enumerate() {
        let (i, j) = (edges.src[e] as usize, edges.dst[e] as usize);
        coordination[i] += weight(i, j, r);
    }
    let mut p = [[0.0; 3]; 3];
    for (i, &c) in coordination.iter().enumerate() {
        if c == 0.0 {
            for (k, row) in p.iter_mut().enumerate() {
                row[k] += params[i].0;
            }
        }
    }
    for (e, &r) in lengths.iter().enumerate() {
        let (i, j) = (edges.src[e] as usize, edges.dst[e] as usize);
        let s = weight(i, j, r);
        if s == 0.0 {
            continue;
        }
        // Each bond appears as i→j and j→i: each direction carries half.
        let mean = 0.5 * s * (params[i].0 / coordination[i] + params[j].0 / coordination[j]);
        let r0 = params[i].1 + params[j].1;
        let eta = (BOND_ANISOTROPY * (r0 / r) * (r0 / r) * (r0 / r)).min(0.9);
        let (along, across) = (mean * (1.0 + 2.0 * eta), mean * (1.0 - eta));
        let u = edges.vectors[e].map(|x| x / r);
        for a in 0..3 {
            for b in 0..3 {
                let identity = if a == b { 1.0 } else { 0.0 };
                p[a][b] += along * u[a] * u[b] + across * (identity - u[a] * u[b]);
            }
        }
    }
    let volume = structure.volume().abs();
    for row in p.iter_mut() {
        for x in row.iter_mut() {
            *x /= volume;
        }
    }
    clausius_mossotti(&symmetrise(&p))
}

/// ε from the polarisability density P (symmetric, positive semi-definite):
/// on each eigenvalue p, x = 4π/3 p saturates smoothly below [`FIELD_CAP`] and
/// ε = (1 + 2x)/(1 − x) ≥ 1.
fn clausius_mossotti(p: &Mat3) -> Mat3 {
    let (values, vectors) = eigen_sym3(p);
    let eps = values.map(|v| {
        let x = (4.0 * std::f64::consts::PI / 3.0 * v).max(0.0);
        let ratio = x / FIELD_CAP;
        let x = x / (1.0 + ratio * ratio * ratio * ratio).sqrt().sqrt();
        (1.0 + 2.0 * x) / (1.0 - x)
    });
    let mut t = [[0.0; 3]; 3];
    for (k, v) in vectors.iter().enumerate() {
        for a in 0..3 {
            for b in 0..3 {
                t[a][b] += eps[k] * v[a] * v[b];
            }
        }
    }
    symmetrise(&t)
}

fn symmetrise(t: &Mat3) -> Mat3 {
    let mut s = *t;
    for a in 0..3 {
        for b in 0..3 {
            s[a][b] = 0.5 * (t[a][b] + t[b][a]);
        }
    }
    s
}

fn norm(v: &[f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// Shortest distance between two atoms, periodic images included, Å.
fn shortest_distance(structure: &Structure) -> f64 {
    let edges = neighbor_list(structure, MIN_DISTANCE, false);
    let shortest = edges.vectors.iter().map(norm).fold(f64::INFINITY, f64::min);
    // Lattice vectors shorter than the limit put an atom next to its own image.
    structure.lattice.iter().map(norm).fold(shortest, f64::min)
}

// ---------------------------------------------------------------------------
// Elements

#[derive(Clone, Copy, PartialEq)]
enum Role {
    Anion,
    SmallCation,
    LargeCation,
}

struct Element {
    z: u8,
    /// Ionic (cations, anions) radius, Å: sums give bond lengths.
    radius: f64,
    /// Electronic polarisability of the ion, Å³.
    polarisability: f64,
    role: Role,
}

const fn el(z: u8, radius: f64, polarisability: f64, role: Role) -> Element {
    Element { z, radius, polarisability, role }
}

/// Ionic radii (Shannon-like, octahedral) and electronic ion polarisabilities.
const ELEMENTS: [Element; 44] = [
    el(9, 1.33, 1.0, Role::Anion),         // F
    el(17, 1.81, 3.0, Role::Anion),        // Cl
    el(35, 1.96, 4.2, Role::Anion),        // Br
    el(53, 2.20, 6.2, Role::Anion),        // I
    el(8, 1.40, 2.0, Role::Anion),         // O
    el(16, 1.84, 5.0, Role::Anion),        // S
    el(34, 1.98, 6.0, Role::Anion),        // Se
    el(52, 2.21, 8.0, Role::Anion),        // Te
    el(7, 1.46, 2.5, Role::Anion),         // N
    el(3, 0.76, 0.03, Role::SmallCation),  // Li
    el(4, 0.45, 0.01, Role::SmallCation),  // Be
    el(12, 0.72, 0.09, Role::SmallCation), // Mg
    el(13, 0.54, 0.05, Role::SmallCation), // Al
    el(14, 0.40, 0.02, Role::SmallCation), // Si
    el(21, 0.75, 0.3, Role::SmallCation),  // Sc
    el(22, 0.61, 0.19, Role::SmallCation), // Ti
    el(25, 0.83, 0.3, Role::SmallCation),  // Mn
    el(26, 0.78, 0.3, Role::SmallCation),  // Fe
    el(27, 0.75, 0.3, Role::SmallCation),  // Co
    el(28, 0.69, 0.3, Role::SmallCation),  // Ni
    el(29, 0.77, 0.4, Role::SmallCation),  // Cu
    el(30, 0.74, 0.29, Role::SmallCation), // Zn
    el(31, 0.62, 0.2, Role::SmallCation),  // Ga
    el(32, 0.53, 0.14, Role::SmallCation), // Ge
    el(40, 0.72, 0.4, Role::SmallCation),  // Zr
    el(41, 0.64, 0.3, Role::SmallCation),  // Nb
    el(42, 0.65, 0.4, Role::SmallCation),  // Mo
    el(50, 0.69, 0.5, Role::SmallCation),  // Sn
    el(51, 0.76, 1.5, Role::SmallCation),  // Sb
    el(72, 0.71, 0.4, Role::SmallCation),  // Hf
    el(73, 0.64, 0.3, Role::SmallCation),  // Ta
    el(74, 0.60, 0.3, Role::SmallCation),  // W
    el(11, 1.02, 0.18, Role::LargeCation), // Na
    el(19, 1.38, 0.84, Role::LargeCation), // K
    el(37, 1.52, 1.4, Role::LargeCation),  // Rb
    el(55, 1.67, 2.4, Role::LargeCation),  // Cs
    el(20, 1.00, 0.47, Role::LargeCation), // Ca
    el(38, 1.18, 0.86, Role::LargeCation), // Sr
    el(56, 1.35, 1.55, Role::LargeCation), // Ba
    el(48, 0.95, 1.1, Role::LargeCation),  // Cd
    el(57, 1.03, 1.0, Role::LargeCation),  // La
    el(82, 1.19, 3.0, Role::LargeCation),  // Pb
    el(83, 1.03, 2.5, Role::LargeCation),  // Bi
    el(81, 1.50, 3.0, Role::LargeCation),  // Tl
];

// ---------------------------------------------------------------------------
// Random draws

/// Portable draws from a ChaCha8 stream (no platform-sized integers, no
/// library sampling algorithms that could change between versions).
struct Draw(ChaCha8Rng);

impl Draw {
    /// Uniform in [lo, hi).
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        let unit = (self.0.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        lo + (hi - lo) * unit
    }

    /// Uniform in [lo, hi) with a random sign.
    fn signed(&mut self, lo: f64, hi: f64) -> f64 {
        let x = self.uniform(lo, hi);
        if self.0.next_u32() & 1 == 0 {
            x
        } else {
            -x
        }
    }

    fn index(&mut self, n: usize) -> usize {
        (self.0.next_u64() % n as u64) as usize
    }

    fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u32 = weights.iter().sum();
        let mut ticket = (self.0.next_u64() % u64::from(total)) as u32;
        for (k, &w) in weights.iter().enumerate() {
            if ticket < w {
                return k;
            }
            ticket -= w;
        }
        weights.len() - 1
    }

    fn element(&mut self, role: Role) -> &'static Element {
        let count = ELEMENTS.iter().filter(|e| e.role == role).count();
        let k = self.index(count);
        ELEMENTS.iter().filter(|e| e.role == role).nth(k).expect("k < count")
    }

    fn cation(&mut self) -> &'static Element {
        if self.0.next_u32() & 1 == 0 {
            self.element(Role::SmallCation)
        } else {
            self.element(Role::LargeCation)
        }
    }

    /// Bond length of a cation–anion pair: sum of radii, ±4 %.
    fn bond(&mut self, a: &Element, b: &Element) -> f64 {
        (a.radius + b.radius) * self.uniform(0.96, 1.04)
    }

    /// Three relative strains, pairwise at least 3 % apart (so that the
    /// lengths are distinguishable at symprec 0.01 Å).
    fn distinct_strains(&mut self) -> [f64; 3] {
        loop {
            let e = [self.uniform(0.93, 1.07), self.uniform(0.93, 1.07), self.uniform(0.93, 1.07)];
            if (e[0] - e[1]).abs() > 0.03 && (e[1] - e[2]).abs() > 0.03 && (e[0] - e[2]).abs() > 0.03 {
                return e;
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Prototypes

type Build = fn(&mut Draw) -> Structure;

/// Relative frequency of the crystal systems, close to Materials Project's,
/// in the order of `CrystalSystem::ALL` (cubic … triclinic), as [`PROTOTYPES`].
const SYSTEM_WEIGHTS: [u32; 7] = [14, 10, 14, 15, 20, 17, 10];

const PROTOTYPES: [&[(&str, Build)]; 7] = [
    &[
        ("rocksalt", rock_salt),
        ("cscl", cesium_chloride),
        ("zincblende", zinc_blende),
        ("fluorite", fluorite),
        ("perovskite", cubic_perovskite),
    ],
    &[("wurtzite", wurtzite), ("nias", nickel_arsenide), ("layer-1h", layer_1h)],
    &[("rhombohedral", rhombohedral), ("layer-1t", layer_1t)],
    &[("rutile", rutile), ("tetragonal-perovskite", tetragonal_perovskite), ("chain", chain)],
    &[("orthorhombic", orthorhombic)],
    &[("monoclinic", monoclinic)],
    &[("triclinic", triclinic)],
];

/// Atoms in fractional coordinates: (Z, [f1, f2, f3]).
type Basis = Vec<(u8, [f64; 3])>;

const FCC: [[f64; 3]; 4] = [[0.0, 0.0, 0.0], [0.0, 0.5, 0.5], [0.5, 0.0, 0.5], [0.5, 0.5, 0.0]];

fn shifted(sites: &[[f64; 3]], by: [f64; 3]) -> Vec<[f64; 3]> {
    sites.iter().map(|s| [s[0] + by[0], s[1] + by[1], s[2] + by[2]]).collect()
}

fn basis(groups: &[(u8, Vec<[f64; 3]>)]) -> Basis {
    groups.iter().flat_map(|(z, sites)| sites.iter().map(move |&s| (*z, s))).collect()
}

/// Cell rows from lengths and the cosines of α (b∧c), β (a∧c), γ (a∧b).
fn lattice_from_parameters(a: f64, b: f64, c: f64, cos_alpha: f64, cos_beta: f64, cos_gamma: f64) -> Mat3 {
    let sin_gamma = (1.0 - cos_gamma * cos_gamma).sqrt();
    let cy = (cos_alpha - cos_beta * cos_gamma) / sin_gamma;
    let cz = (1.0 - cos_beta * cos_beta - cy * cy).sqrt();
    [[a, 0.0, 0.0], [b * cos_gamma, b * sin_gamma, 0.0], [c * cos_beta, c * cy, c * cz]]
}

fn hexagonal_lattice(a: f64, c: f64) -> Mat3 {
    [[a, 0.0, 0.0], [-0.5 * a, 0.5 * 3f64.sqrt() * a, 0.0], [0.0, 0.0, c]]
}

fn cubic_lattice(a: f64) -> Mat3 {
    [[a, 0.0, 0.0], [0.0, a, 0.0], [0.0, 0.0, a]]
}

fn build(lattice: Mat3, atoms: &Basis) -> Structure {
    let positions = atoms
        .iter()
        .map(|(_, f)| {
            let mut r = [0.0; 3];
            for (k, row) in lattice.iter().enumerate() {
                for x in 0..3 {
                    r[x] += f[k] * row[x];
                }
            }
            r
        })
        .collect();
    Structure { lattice, numbers: atoms.iter().map(|a| a.0).collect(), positions }
}

/// Repeats the cell `n[k]` times along lattice vector k.
fn supercell(atoms: &Basis, n: [u32; 3]) -> Basis {
    let mut out = Vec::new();
    for i in 0..n[0] {
        for j in 0..n[1] {
            for k in 0..n[2] {
                for &(z, f) in atoms {
                    out.push((
                        z,
                        [
                            (f[0] + f64::from(i)) / f64::from(n[0]),
                            (f[1] + f64::from(j)) / f64::from(n[1]),
                            (f[2] + f64::from(k)) / f64::from(n[2]),
                        ],
                    ));
                }
            }
        }
    }
    out
}

fn scale_lattice(lattice: &Mat3, n: [u32; 3]) -> Mat3 {
    let mut l = *lattice;
    for (row, &k) in l.iter_mut().zip(&n) {
        for x in row.iter_mut() {
            *x *= f64::from(k);
        }
    }
    l
}

/// Uniformly rescales a bulk structure so that its shortest cation–anion
/// distance (`cation`, `anion` Z) is `bond` Å.
fn scaled_to_bond(mut s: Structure, cation: u8, anion: u8, bond: f64) -> Structure {
    let longest = s.lattice.iter().map(norm).fold(0.0, f64::max);
    let edges = neighbor_list(&s, longest, false);
    let shortest = (0..edges.src.len())
        .filter(|&e| s.numbers[edges.src[e] as usize] == cation && s.numbers[edges.dst[e] as usize] == anion)
        .map(|e| norm(&edges.vectors[e]))
        .fold(f64::INFINITY, f64::min);
    if !shortest.is_finite() {
        return s;
    }
    let factor = bond / shortest;
    for row in s.lattice.iter_mut() {
        *row = row.map(|x| x * factor);
    }
    for p in s.positions.iter_mut() {
        *p = p.map(|x| x * factor);
    }
    s
}

fn rock_salt_basis(a: u8, x: u8) -> Basis {
    basis(&[(a, FCC.to_vec()), (x, shifted(&FCC, [0.5, 0.0, 0.0]))])
}

fn cesium_chloride_basis(a: u8, x: u8) -> Basis {
    basis(&[(a, vec![[0.0; 3]]), (x, vec![[0.5; 3]])])
}

fn fluorite_basis(a: u8, x: u8) -> Basis {
    basis(&[(a, FCC.to_vec()), (x, shifted(&FCC, [0.25; 3])), (x, shifted(&FCC, [0.75; 3]))])
}

fn perovskite_basis(a: u8, b: u8, x: u8, b_shift: f64) -> Basis {
    basis(&[
        (a, vec![[0.0; 3]]),
        (b, vec![[0.5, 0.5, 0.5 + b_shift]]),
        (x, vec![[0.5, 0.5, 0.0], [0.5, 0.0, 0.5], [0.0, 0.5, 0.5]]),
    ])
}

fn rock_salt(d: &mut Draw) -> Structure {
    let (a, x) = (d.cation(), d.element(Role::Anion));
    let bond = d.bond(a, x);
    build(cubic_lattice(2.0 * bond), &rock_salt_basis(a.z, x.z))
}

fn cesium_chloride(d: &mut Draw) -> Structure {
    let (a, x) = (d.element(Role::LargeCation), d.element(Role::Anion));
    let bond = d.bond(a, x);
    let n = if d.index(3) == 0 { 2 } else { 1 };
    let lattice = scale_lattice(&cubic_lattice(2.0 * bond / 3f64.sqrt()), [n; 3]);
    build(lattice, &supercell(&cesium_chloride_basis(a.z, x.z), [n; 3]))
}

fn zinc_blende(d: &mut Draw) -> Structure {
    let (a, x) = (d.element(Role::SmallCation), d.element(Role::Anion));
    let bond = d.bond(a, x);
    let atoms = basis(&[(a.z, FCC.to_vec()), (x.z, shifted(&FCC, [0.25; 3]))]);
    build(cubic_lattice(4.0 * bond / 3f64.sqrt()), &atoms)
}

fn fluorite(d: &mut Draw) -> Structure {
    let (a, x) = (d.element(Role::LargeCation), d.element(Role::Anion));
    let bond = d.bond(a, x);
    build(cubic_lattice(4.0 * bond / 3f64.sqrt()), &fluorite_basis(a.z, x.z))
}

fn cubic_perovskite(d: &mut Draw) -> Structure {
    let (a, b, x) = (d.element(Role::LargeCation), d.element(Role::SmallCation), d.element(Role::Anion));
    let bond = d.bond(b, x);
    let n = if d.index(4) == 0 { 2 } else { 1 };
    let lattice = scale_lattice(&cubic_lattice(2.0 * bond), [n; 3]);
    build(lattice, &supercell(&perovskite_basis(a.z, b.z, x.z, 0.0), [n; 3]))
}

fn wurtzite(d: &mut Draw) -> Structure {
    let (a, x) = (d.element(Role::SmallCation), d.element(Role::Anion));
    let bond = d.bond(a, x);
    let (c_over_a, u) = (d.uniform(1.58, 1.66), d.uniform(0.37, 0.385));
    let atoms = basis(&[
        (a.z, vec![[1.0 / 3.0, 2.0 / 3.0, 0.0], [2.0 / 3.0, 1.0 / 3.0, 0.5]]),
        (x.z, vec![[1.0 / 3.0, 2.0 / 3.0, u], [2.0 / 3.0, 1.0 / 3.0, 0.5 + u]]),
    ]);
    let n = [1, 1, 1 + d.index(2) as u32];
    let s = build(scale_lattice(&hexagonal_lattice(1.0, c_over_a), n), &supercell(&atoms, n));
    scaled_to_bond(s, a.z, x.z, bond)
}

fn nickel_arsenide(d: &mut Draw) -> Structure {
    let (a, x) = (d.element(Role::SmallCation), d.element(Role::Anion));
    let bond = d.bond(a, x);
    let atoms = basis(&[
        (a.z, vec![[0.0, 0.0, 0.0], [0.0, 0.0, 0.5]]),
        (x.z, vec![[1.0 / 3.0, 2.0 / 3.0, 0.25], [2.0 / 3.0, 1.0 / 3.0, 0.75]]),
    ]);
    let s = build(hexagonal_lattice(1.0, d.uniform(1.3, 1.6)), &atoms);
    scaled_to_bond(s, a.z, x.z, bond)
}

/// An MX₂ monolayer in a cell with 15–25 Å along c: trigonal-prismatic (1H,
/// hexagonal) or octahedral (1T, trigonal) coordination.
fn layer(d: &mut Draw, prismatic: bool) -> Structure {
    let (m, x) = (d.element(Role::SmallCation), d.element(Role::Anion));
    let bond = d.bond(m, x);
    let height = bond * d.uniform(0.55, 0.7);
    let a = (3.0 * (bond * bond - height * height)).sqrt();
    let c = d.uniform(15.0, 25.0);
    let (h, third, two_thirds) = (height / c, 1.0 / 3.0, 2.0 / 3.0);
    let atoms = if prismatic {
        basis(&[
            (m.z, vec![[third, two_thirds, 0.5]]),
            (x.z, vec![[two_thirds, third, 0.5 + h], [two_thirds, third, 0.5 - h]]),
        ])
    } else {
        basis(&[
            (m.z, vec![[0.0, 0.0, 0.5]]),
            (x.z, vec![[third, two_thirds, 0.5 + h], [two_thirds, third, 0.5 - h]]),
        ])
    };
    build(hexagonal_lattice(a, c), &atoms)
}

fn layer_1h(d: &mut Draw) -> Structure {
    layer(d, true)
}

fn layer_1t(d: &mut Draw) -> Structure {
    layer(d, false)
}

/// Rock salt's primitive cell stretched or squeezed along [111]: α away from
/// 60° (fcc), 90° (simple cubic) and 109.47° (bcc).
fn rhombohedral(d: &mut Draw) -> Structure {
    let (a, x) = (d.cation(), d.element(Role::Anion));
    let bond = d.bond(a, x);
    let cos_alpha = if d.index(2) == 0 { d.uniform(0.2, 0.42) } else { d.uniform(0.58, 0.7) };
    let lattice = lattice_from_parameters(1.0, 1.0, 1.0, cos_alpha, cos_alpha, cos_alpha);
    scaled_to_bond(build(lattice, &cesium_chloride_basis(a.z, x.z)), a.z, x.z, bond)
}

fn rutile(d: &mut Draw) -> Structure {
    let (a, x) = (d.element(Role::SmallCation), d.element(Role::Anion));
    let bond = d.bond(a, x);
    let u = d.uniform(0.29, 0.31);
    let atoms = basis(&[
        (a.z, vec![[0.0, 0.0, 0.0], [0.5, 0.5, 0.5]]),
        (x.z, vec![[u, u, 0.0], [1.0 - u, 1.0 - u, 0.0], [0.5 + u, 0.5 - u, 0.5], [0.5 - u, 0.5 + u, 0.5]]),
    ]);
    let n = [1, 1, 1 + d.index(2) as u32];
    let lattice = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, d.uniform(0.6, 0.68)]];
    let s = build(scale_lattice(&lattice, n), &supercell(&atoms, n));
    scaled_to_bond(s, a.z, x.z, bond)
}

/// Perovskite stretched along c with the B ion off-centre (P4mm, ferroelectric-like).
fn tetragonal_perovskite(d: &mut Draw) -> Structure {
    let (a, b, x) = (d.element(Role::LargeCation), d.element(Role::SmallCation), d.element(Role::Anion));
    let bond = d.bond(b, x);
    let lattice = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, d.uniform(1.03, 1.12)]];
    let s = build(lattice, &perovskite_basis(a.z, b.z, x.z, d.uniform(0.02, 0.06)));
    scaled_to_bond(s, b.z, x.z, bond)
}

/// Straight –A–X– chains along c on a square grid, 1.6–2.2 bond lengths apart.
fn chain(d: &mut Draw) -> Structure {
    let (a, x) = (d.cation(), d.element(Role::Anion));
    let bond = d.bond(a, x);
    let spacing = bond * d.uniform(1.6, 2.2);
    let lattice = [[spacing, 0.0, 0.0], [0.0, spacing, 0.0], [0.0, 0.0, 2.0 * bond]];
    build(lattice, &cesium_chloride_basis(a.z, x.z).into_iter().map(|(z, f)| (z, [0.0, 0.0, f[2]])).collect())
}

/// A cubic prototype's basis (rock salt, CsCl, fluorite, perovskite) for the
/// strained cells, with the cation–anion pair that sets the scale.
fn distortable_basis(d: &mut Draw) -> (Basis, u8, u8, f64) {
    let x = d.element(Role::Anion);
    match d.index(4) {
        0 => {
            let a = d.cation();
            (rock_salt_basis(a.z, x.z), a.z, x.z, d.bond(a, x))
        }
        1 => {
            let a = d.element(Role::LargeCation);
            (cesium_chloride_basis(a.z, x.z), a.z, x.z, d.bond(a, x))
        }
        2 => {
            let a = d.element(Role::LargeCation);
            (fluorite_basis(a.z, x.z), a.z, x.z, d.bond(a, x))
        }
        _ => {
            let (a, b) = (d.element(Role::LargeCation), d.element(Role::SmallCation));
            (perovskite_basis(a.z, b.z, x.z, 0.0), b.z, x.z, d.bond(b, x))
        }
    }
}

fn orthorhombic(d: &mut Draw) -> Structure {
    let (atoms, cation, anion, bond) = distortable_basis(d);
    let [ea, eb, ec] = d.distinct_strains();
    let lattice = lattice_from_parameters(ea, eb, ec, 0.0, 0.0, 0.0);
    scaled_to_bond(build(lattice, &atoms), cation, anion, bond)
}

fn monoclinic(d: &mut Draw) -> Structure {
    let (atoms, cation, anion, bond) = distortable_basis(d);
    let [ea, eb, ec] = d.distinct_strains();
    let cos_beta = -d.uniform(0.08, 0.25);
    let lattice = lattice_from_parameters(ea, eb, ec, 0.0, cos_beta, 0.0);
    scaled_to_bond(build(lattice, &atoms), cation, anion, bond)
}

/// General cell (three lengths, three angles all different); half of them
/// also get random displacements of 0.05–0.12 Å, which remove the inversion
/// centre too.
fn triclinic(d: &mut Draw) -> Structure {
    let (mut atoms, cation, anion, bond) = distortable_basis(d);
    let [ea, eb, ec] = d.distinct_strains();
    let cosines = loop {
        let c = [d.signed(0.06, 0.2), d.signed(0.06, 0.2), d.signed(0.06, 0.2)];
        if (c[0] - c[1]).abs() > 0.04 && (c[1] - c[2]).abs() > 0.04 && (c[0] - c[2]).abs() > 0.04 {
            break c;
        }
    };
    if d.index(2) == 0 {
        for (_, f) in atoms.iter_mut() {
            for x in f.iter_mut() {
                *x += d.signed(0.012, 0.03);
            }
        }
    }
    let lattice = lattice_from_parameters(ea, eb, ec, cosines[0], cosines[1], cosines[2]);
    scaled_to_bond(build(lattice, &atoms), cation, anion, bond)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crystal::symmetry::{crystal_system, CrystalSystem};
    use crate::e3::sym3::eigenvalues_sym3;

    #[test]
    fn same_seed_same_bytes() {
        let bytes = |n, seed| {
            let mut out = Vec::new();
            crate::crystal::io::write_extxyz(&mut out, &generate(n, seed)).unwrap();
            out
        };
        let (a, b, c) = (bytes(40, 7), bytes(40, 7), bytes(40, 8));
        assert_eq!(a, b);
        assert_ne!(a, c);
        // A smaller set is a prefix of a larger one.
        assert_eq!(generate(10, 7), generate(40, 7)[..10].to_vec());
    }

    #[test]
    fn all_crystal_systems_and_physical_tensors() {
        let frames = generate(300, 1);
        let mut seen = std::collections::BTreeMap::new();
        for f in &frames {
            let s = &f.structure;
            assert!((2..=MAX_ATOMS).contains(&s.len()));
            assert!(shortest_distance(s) >= MIN_DISTANCE);
            let eps = f.dielectric.unwrap();
            let transposed = [0, 1, 2].map(|a| [0, 1, 2].map(|b| eps[b][a]));
            assert_eq!(eps, transposed);
            let values = eigenvalues_sym3(&eps);
            assert!(values[0] >= 1.0, "{values:?}");
            let system = crystal_system(s, 0.01).unwrap();
            if system == CrystalSystem::Cubic {
                let mean = (values[0] + values[1] + values[2]) / 3.0;
                for a in 0..3 {
                    for b in 0..3 {
                        let want = if a == b { mean } else { 0.0 };
                        assert!((eps[a][b] - want).abs() < 1e-10, "{:?}: {eps:?}", f.id);
                    }
                }
            }
            // moyo finds the system the prototype was built for.
            let prototype = f.id.as_deref().unwrap().splitn(4, '-').nth(3).unwrap();
            let intended =
                PROTOTYPES.iter().position(|p| p.iter().any(|(name, _)| *name == prototype)).unwrap();
            assert_eq!(system, CrystalSystem::ALL[intended], "{:?}", f.id);
            *seen.entry(system).or_insert(0) += 1;
        }
        assert_eq!(seen.len(), 7, "{seen:?}");
        let mut poly: Vec<f64> =
            frames.iter().map(|f| crate::e3::sym3::eps_poly(&f.dielectric.unwrap())).collect();
        poly.sort_by(f64::total_cmp);
        let in_range = poly.iter().filter(|&&p| (1.5..=15.0).contains(&p)).count();
        assert!(in_range * 10 >= poly.len() * 7, "ε_poly quantiles {:?}", [poly[0], poly[150], poly[299]]);
    }

    #[test]
    fn tensor_rotates_with_structure() {
        let (c, s) = (0.6, 0.8); // rotation about z, then about x
        let rz = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]];
        let rx = [[1.0, 0.0, 0.0], [0.0, s, -c], [0.0, c, s]];
        let r = matmul(&rx, &rz);
        for k in 0..20 {
            let (_, structure) = crystal(3, k);
            let eps = dielectric_model(&structure);
            let rotate = |v: &[f64; 3]| [0, 1, 2].map(|i| (0..3).map(|j| r[i][j] * v[j]).sum::<f64>());
            let rotated = Structure {
                lattice: structure.lattice.map(|row| rotate(&row)),
                numbers: structure.numbers.clone(),
                positions: structure.positions.iter().map(rotate).collect(),
            };
            let got = dielectric_model(&rotated);
            let rt = [0, 1, 2].map(|i| [0, 1, 2].map(|j| r[j][i]));
            let want = matmul(&matmul(&r, &eps), &rt);
            for a in 0..3 {
                for b in 0..3 {
                    assert!((got[a][b] - want[a][b]).abs() < 1e-10, "structure {k}: {got:?} vs {want:?}");
                }
            }
        }
    }

    fn matmul(a: &Mat3, b: &Mat3) -> Mat3 {
        [0, 1, 2].map(|i| [0, 1, 2].map(|j| (0..3).map(|k| a[i][k] * b[k][j]).sum()))
    }
}
