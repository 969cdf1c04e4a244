//! NSGA-II (Deb et al., IEEE TEVC 2002) over bounded **integer** decision
//! variables, with the operators of pymoo 0.5 (`get_algorithm("nsga2")` with
//! `int_random` sampling, `int_sbx` crossover and `int_pm` mutation), the
//! configuration the weight-sharing exploration of Dupuis et al. (ASP-DAC
//! 2022) uses, so that `ws-dse` and `moea-bins` share one tested
//! implementation. All objectives are **minimised**.
//!
//! One run:
//!
//! 1. **Initial population**: `pop_size` vectors drawn uniformly from the
//!    integer box (`int_random`); duplicates are redrawn (at most 100 rounds,
//!    so a box with fewer points than `pop_size` gives a smaller
//!    population). Evaluated, then ranked by survival (step 4). This is
//!    generation 1.
//! 2. **Mating**: binary tournaments (pymoo's `TournamentSelection`,
//!    pressure 2, candidates from concatenated random permutations): the
//!    winner is the one that Pareto-dominates the other, else the one with
//!    the larger crowding distance, else a coin flip. Each pair of parents
//!    gives two children by **SBX** (with probability `sbx_prob` per pair;
//!    each variable crossed with probability `sbx_prob_var`, skipped where
//!    the parents agree; Deb's bounded SBX with index `sbx_eta`; children
//!    exchanged per variable with probability 0.5) followed by **polynomial
//!    mutation** (each variable with probability `pm_prob`, default
//!    `1 / n_var`, index `pm_eta`). As in pymoo's `IntegerFromFloat*`
//!    operators, both act on reals in the box widened by `0.5 − 1e-16` on
//!    each side and the result is rounded half to even, so every integer of
//!    the box is equally reachable.
//! 3. **Duplicate elimination** (`eliminate_duplicates = true` in the
//!    reference): a child equal to a member of the population, to an earlier
//!    child or to a child of this generation is dropped and mating repeats
//!    for the missing ones (at most 100 rounds; pymoo's `n_max_iterations`).
//! 4. **Survival**: parents and children are merged, sorted into
//!    non-dominated fronts ([`non_dominated_sort`]), and fronts are kept in
//!    order; the front that does not fit is cut by decreasing
//!    [`crowding_distance`], ties broken at random. Rank and crowding are
//!    stored for the next tournaments.
//! 5. Steps 2–4 repeat until `generations` generations (the initial one
//!    included, as pymoo counts `n_gen`): at most
//!    `pop_size · generations` evaluations.
//!
//! Everything random comes from one `ChaCha8` stream seeded by
//! [`Nsga2Params::seed`], so a run is reproducible bit for bit. (The stream
//! differs from numpy's, so the exact populations of a pymoo run are not
//! reproduced, only its algorithm.)

use std::cmp::Ordering;
use std::collections::HashSet;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::KernelError;

const KERNEL: &str = "nsga2";

/// Rounds of mating (or sampling) tried to replace duplicates, as pymoo's
/// `n_max_iterations`.
const MAX_DUPLICATE_ROUNDS: usize = 100;

/// Half-width added to each side of the integer box for the real-valued
/// operators (pymoo's `apply_float_operation`).
const WIDEN: f64 = 0.5 - 1e-16;

/// Parameters of an NSGA-II run. Defaults: pymoo 0.5 as used by the
/// reference code (population 100, 100 generations, SBX 0.9 / η 30, PM η 20
/// with probability `1 / n_var`, duplicates eliminated), seed 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Nsga2Params {
    /// Population size (and children per generation). Allowed: `>= 2`.
    pub pop_size: usize,
    /// Generations, the initial population counting as the first.
    /// Allowed: `>= 1`.
    pub generations: usize,
    /// Probability that a pair of parents is crossed at all. Allowed: `[0, 1]`.
    pub sbx_prob: f64,
    /// Probability that one variable of a crossed pair is recombined.
    /// Allowed: `[0, 1]`; pymoo 0.5: `0.5`.
    pub sbx_prob_var: f64,
    /// SBX distribution index η_c (larger: children closer to parents).
    /// Allowed: finite, `>= 0`.
    pub sbx_eta: f64,
    /// Polynomial-mutation distribution index η_m. Allowed: finite, `>= 0`.
    pub pm_eta: f64,
    /// Per-variable mutation probability; `None` means `1 / n_var`.
    /// Allowed: `[0, 1]`.
    pub pm_prob: Option<f64>,
    /// Drop children identical to an existing or earlier individual.
    pub eliminate_duplicates: bool,
    /// Seed of the random stream.
    pub seed: u64,
}

impl Default for Nsga2Params {
    fn default() -> Self {
        Self {
            pop_size: 100,
            generations: 100,
            sbx_prob: 0.9,
            sbx_prob_var: 0.5,
            sbx_eta: 30.0,
            pm_eta: 20.0,
            pm_prob: None,
            eliminate_duplicates: true,
            seed: 0,
        }
    }
}

impl Nsga2Params {
    /// Checks every field against its allowed range.
    ///
    /// # Errors
    /// [`KernelError::InvalidParameter`] naming the first offending field.
    pub fn validate(&self) -> Result<(), KernelError> {
        let bad = |name: &'static str, value: String, allowed: &'static str| {
            Err(KernelError::InvalidParameter {
                kernel: KERNEL,
                name,
                value,
                allowed,
            })
        };
        let unit = |x: f64| x.is_finite() && (0.0..=1.0).contains(&x);
        if self.pop_size < 2 {
            return bad("pop_size", self.pop_size.to_string(), ">= 2");
        }
        if self.generations < 1 {
            return bad("generations", self.generations.to_string(), ">= 1");
        }
        if !unit(self.sbx_prob) {
            return bad("sbx_prob", self.sbx_prob.to_string(), "[0, 1]");
        }
        if !unit(self.sbx_prob_var) {
            return bad("sbx_prob_var", self.sbx_prob_var.to_string(), "[0, 1]");
        }
        if !(self.sbx_eta.is_finite() && self.sbx_eta >= 0.0) {
            return bad("sbx_eta", self.sbx_eta.to_string(), "finite, >= 0");
        }
        if !(self.pm_eta.is_finite() && self.pm_eta >= 0.0) {
            return bad("pm_eta", self.pm_eta.to_string(), "finite, >= 0");
        }
        if let Some(p) = self.pm_prob {
            if !unit(p) {
                return bad("pm_prob", p.to_string(), "[0, 1]");
            }
        }
        Ok(())
    }
}

/// One member of a population.
#[derive(Debug, Clone, PartialEq)]
pub struct Individual {
    /// Decision vector (one integer per variable, inside its bounds).
    pub x: Vec<i64>,
    /// Objective values (all minimised).
    pub f: Vec<f64>,
    /// Non-dominated rank in the last survival (0 = first front).
    pub rank: usize,
    /// Crowding distance within its front in the last survival.
    pub crowding: f64,
}

/// What the observer sees after each generation.
#[derive(Debug, Clone, Copy)]
pub struct GenerationInfo<'a> {
    /// Generation number, 1 for the initial population.
    pub generation: usize,
    /// Objective evaluations requested so far in this run.
    pub evaluations: usize,
    /// The population after survival (ranks and crowding set).
    pub population: &'a [Individual],
}

/// Outcome of [`nsga2`].
#[derive(Debug, Clone, PartialEq)]
pub struct Nsga2Result {
    /// Final population after the last survival.
    pub population: Vec<Individual>,
    /// Objective evaluations requested.
    pub evaluations: usize,
    /// Generations run (the initial population included).
    pub generations: usize,
}

impl Nsga2Result {
    /// The first non-dominated front of the final population (pymoo's
    /// `res.X` / `res.F`), in population order.
    pub fn front(&self) -> Vec<&Individual> {
        self.population.iter().filter(|i| i.rank == 0).collect()
    }
}

/// Why [`nsga2`] stopped.
#[derive(Debug, thiserror::Error)]
pub enum Nsga2Error<E> {
    /// Invalid parameters, bounds or objective values.
    #[error(transparent)]
    Invalid(#[from] KernelError),
    /// The objective function failed.
    #[error("objective evaluation failed: {0}")]
    Evaluation(E),
}

/// `true` iff `a` Pareto-dominates `b` (minimisation): no worse in every
/// objective and strictly better in one.
pub fn dominates(a: &[f64], b: &[f64]) -> bool {
    let mut strictly = false;
    for (x, y) in a.iter().zip(b) {
        if x > y {
            return false;
        }
        if x < y {
            strictly = true;
        }
    }
    strictly
}

/// Deb's fast non-dominated sort: the fronts as lists of indices into `f`,
/// best front first, indices ascending within a front.
pub fn non_dominated_sort<V: AsRef<[f64]>>(f: &[V]) -> Vec<Vec<usize>> {
    let n = f.len();
    let mut dominated_by: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut count = vec![0usize; n];
    for i in 0..n {
        for j in (i + 1)..n {
            let (a, b) = (f[i].as_ref(), f[j].as_ref());
            if dominates(a, b) {
                dominated_by[i].push(j);
                count[j] += 1;
            } else if dominates(b, a) {
                dominated_by[j].push(i);
                count[i] += 1;
            }
        }
    }
    let mut fronts = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| count[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominated_by[i] {
                count[j] -= 1;
                if count[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        fronts.push(current);
        current = next;
    }
    fronts
}

/// Crowding distance of each point of one front (Deb et al. 2002): for every
/// objective, the points are sorted by it, the two extremes get `+∞`, and
/// every other point adds the gap between its two neighbours divided by the
/// objective's range. An objective with zero range adds nothing. With at
/// most two points all distances are `+∞`.
///
/// Duplicate points (identical objective vectors) are handled as in pymoo:
/// the distance is computed over the distinct points, the first occurrence
/// of a duplicate gets that distance and the later ones get `0`.
pub fn crowding_distance<V: AsRef<[f64]>>(f: &[V]) -> Vec<f64> {
    let n = f.len();
    if n <= 2 {
        return vec![f64::INFINITY; n];
    }
    // Distinct points: first occurrences.
    let mut unique: Vec<usize> = Vec::with_capacity(n);
    for i in 0..n {
        if !unique.iter().any(|&u| f[u].as_ref() == f[i].as_ref()) {
            unique.push(i);
        }
    }
    let mut cd = vec![0.0f64; n];
    if unique.len() <= 2 {
        for &u in &unique {
            cd[u] = f64::INFINITY;
        }
        return cd;
    }
    let m = f[0].as_ref().len();
    for j in 0..m {
        let mut order = unique.clone();
        order.sort_by(|&a, &b| f[a].as_ref()[j].total_cmp(&f[b].as_ref()[j]));
        let lo = f[order[0]].as_ref()[j];
        let hi = f[order[order.len() - 1]].as_ref()[j];
        let range = hi - lo;
        if range <= 0.0 {
            continue;
        }
        cd[order[0]] = f64::INFINITY;
        cd[order[order.len() - 1]] = f64::INFINITY;
        for w in order.windows(3) {
            let gap = f[w[2]].as_ref()[j] - f[w[0]].as_ref()[j];
            cd[w[1]] += gap / range;
        }
    }
    cd
}

/// Hypervolume of a set of two-objective points (both minimised) with
/// respect to `reference`: the area of the region dominated by the points
/// and bounded by the reference point. Points that do not strictly dominate
/// the reference in both objectives contribute nothing.
pub fn hypervolume_2d(points: &[[f64; 2]], reference: [f64; 2]) -> f64 {
    let mut pts: Vec<[f64; 2]> = points
        .iter()
        .copied()
        .filter(|p| p[0] < reference[0] && p[1] < reference[1])
        .collect();
    pts.sort_by(|a, b| a[0].total_cmp(&b[0]).then(a[1].total_cmp(&b[1])));
    let mut hv = 0.0;
    let mut best_second = reference[1];
    for p in pts {
        if p[1] < best_second {
            hv += (reference[0] - p[0]) * (best_second - p[1]);
            best_second = p[1];
        }
    }
    hv
}

/// Runs NSGA-II on the integer box `bounds` (inclusive `(lower, upper)` per
/// variable), minimising the objective vector returned by `evaluate`;
/// `observe` is called after every generation (the initial one included).
///
/// # Errors
/// * [`Nsga2Error::Invalid`] for invalid parameters, an empty or inverted
///   box, or objective vectors that are empty, of varying length or not
///   finite;
/// * [`Nsga2Error::Evaluation`] with the first error `evaluate` returns.
pub fn nsga2<E>(
    bounds: &[(i64, i64)],
    params: &Nsga2Params,
    evaluate: impl FnMut(&[i64]) -> Result<Vec<f64>, E>,
    observe: impl FnMut(&GenerationInfo<'_>),
) -> Result<Nsga2Result, Nsga2Error<E>> {
    run(bounds, params, None, true, evaluate, observe)
}

/// Like [`nsga2`], but generation 1 is the given `initial` population instead of a
/// random sample (pymoo's `sampling=<array>`, e.g. the linearly spaced population of
/// `moea-bins`). With `eliminate_duplicates`, repeated vectors are dropped (the first
/// occurrence kept), as pymoo does, so the first population may be smaller than
/// `pop_size`; later generations refill it. More than `pop_size` vectors are all
/// evaluated and cut to `pop_size` by survival.
///
/// # Errors
/// As [`nsga2`], plus [`Nsga2Error::Invalid`] for an empty `initial`, a vector of the
/// wrong length or one outside `bounds`.
pub fn nsga2_with_initial<E>(
    bounds: &[(i64, i64)],
    params: &Nsga2Params,
    initial: &[Vec<i64>],
    evaluate: impl FnMut(&[i64]) -> Result<Vec<f64>, E>,
    observe: impl FnMut(&GenerationInfo<'_>),
) -> Result<Nsga2Result, Nsga2Error<E>> {
    run(bounds, params, Some(initial), false, evaluate, observe)
}

/// Like [`nsga2_with_initial`], but the given `seeds` are only the start of
/// generation 1: after them (duplicates dropped), random samples fill the population
/// up to `pop_size`, as [`nsga2`] draws them. This is pymoo's `sampling=<Population>`
/// built from a few known configurations plus `int_random` samples (`ws-dse`'s
/// `init = "uniform"`). More than `pop_size` seeds are all evaluated and cut by
/// survival, as in [`nsga2_with_initial`]. Without seeds it is [`nsga2`], draw for
/// draw.
///
/// # Errors
/// As [`nsga2_with_initial`].
pub fn nsga2_seeded<E>(
    bounds: &[(i64, i64)],
    params: &Nsga2Params,
    seeds: &[Vec<i64>],
    evaluate: impl FnMut(&[i64]) -> Result<Vec<f64>, E>,
    observe: impl FnMut(&GenerationInfo<'_>),
) -> Result<Nsga2Result, Nsga2Error<E>> {
    // No seeds: exactly `nsga2` (same random stream).
    let given = if seeds.is_empty() { None } else { Some(seeds) };
    run(bounds, params, given, true, evaluate, observe)
}

fn run<E>(
    bounds: &[(i64, i64)],
    params: &Nsga2Params,
    given: Option<&[Vec<i64>]>,
    fill_random: bool,
    mut evaluate: impl FnMut(&[i64]) -> Result<Vec<f64>, E>,
    mut observe: impl FnMut(&GenerationInfo<'_>),
) -> Result<Nsga2Result, Nsga2Error<E>> {
    params.validate()?;
    if bounds.is_empty() {
        return Err(invalid("bounds", "[]".into(), "at least one variable").into());
    }
    if let Some((i, b)) = bounds.iter().enumerate().find(|(_, b)| b.0 > b.1) {
        return Err(invalid(
            "bounds",
            format!("variable {i}: ({}, {})", b.0, b.1),
            "lower <= upper for every variable",
        )
        .into());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let ops = Operators::new(bounds, params);
    let mut evaluations = 0usize;
    let mut n_obj: Option<usize> = None;
    let mut eval_all = |xs: Vec<Vec<i64>>, evaluations: &mut usize| {
        let mut out = Vec::with_capacity(xs.len());
        for x in xs {
            let f = evaluate(&x).map_err(Nsga2Error::Evaluation)?;
            *evaluations += 1;
            check_objectives(&f, &mut n_obj)?;
            out.push(Individual {
                x,
                f,
                rank: 0,
                crowding: 0.0,
            });
        }
        Ok::<_, Nsga2Error<E>>(out)
    };

    // Generation 1: the given population, or random sampling without duplicates.
    let mut seen: HashSet<Vec<i64>> = HashSet::new();
    let mut initial: Vec<Vec<i64>> = Vec::with_capacity(params.pop_size);
    if let Some(given) = given {
        if given.is_empty() {
            return Err(invalid("initial", "[]".into(), "at least one vector").into());
        }
        for (i, x) in given.iter().enumerate() {
            let inside = x.len() == bounds.len()
                && x.iter().zip(bounds).all(|(v, b)| b.0 <= *v && *v <= b.1);
            if !inside {
                return Err(invalid(
                    "initial",
                    format!("vector {i}: {x:?}"),
                    "one integer per variable, inside the bounds",
                )
                .into());
            }
            if !params.eliminate_duplicates || seen.insert(x.clone()) {
                initial.push(x.clone());
            }
        }
    }
    for _ in 0..if fill_random { MAX_DUPLICATE_ROUNDS } else { 0 } {
        while initial.len() < params.pop_size {
            let x: Vec<i64> = bounds
                .iter()
                .map(|&(lo, hi)| rng.random_range(lo..=hi))
                .collect();
            if !params.eliminate_duplicates || seen.insert(x.clone()) {
                initial.push(x);
            } else {
                break;
            }
        }
        if initial.len() == params.pop_size {
            break;
        }
    }
    let mut pop = eval_all(initial, &mut evaluations)?;
    let target = params.pop_size;
    pop = survive(pop, target, &mut rng);
    observe(&GenerationInfo {
        generation: 1,
        evaluations,
        population: &pop,
    });

    let mut generation = 1;
    while generation < params.generations {
        generation += 1;
        let children = ops.offspring(&pop, params, &mut rng);
        let mut merged = pop;
        merged.extend(eval_all(children, &mut evaluations)?);
        pop = survive(merged, target, &mut rng);
        observe(&GenerationInfo {
            generation,
            evaluations,
            population: &pop,
        });
    }
    Ok(Nsga2Result {
        population: pop,
        evaluations,
        generations: generation,
    })
}

fn invalid(name: &'static str, value: String, allowed: &'static str) -> KernelError {
    KernelError::InvalidParameter {
        kernel: KERNEL,
        name,
        value,
        allowed,
    }
}

fn check_objectives(f: &[f64], n_obj: &mut Option<usize>) -> Result<(), KernelError> {
    if f.is_empty() {
        return Err(invalid("objectives", "[]".into(), "at least one objective"));
    }
    if let Some(v) = f.iter().find(|v| !v.is_finite()) {
        return Err(invalid("objectives", v.to_string(), "finite values"));
    }
    match n_obj {
        None => *n_obj = Some(f.len()),
        Some(m) if *m != f.len() => {
            return Err(invalid(
                "objectives",
                format!("{} values after {}", f.len(), m),
                "the same number of objectives for every individual",
            ))
        }
        _ => {}
    }
    Ok(())
}

/// Rank-and-crowding survival of `pop` down to `size` individuals; sets
/// `rank` and `crowding` of the survivors.
fn survive(mut pop: Vec<Individual>, size: usize, rng: &mut ChaCha8Rng) -> Vec<Individual> {
    let fronts = {
        let f: Vec<&[f64]> = pop.iter().map(|i| i.f.as_slice()).collect();
        non_dominated_sort(&f)
    };
    let mut keep: Vec<usize> = Vec::with_capacity(size);
    for (rank, front) in fronts.iter().enumerate() {
        let cd = {
            let f: Vec<&[f64]> = front.iter().map(|&i| pop[i].f.as_slice()).collect();
            crowding_distance(&f)
        };
        for (&i, &d) in front.iter().zip(&cd) {
            pop[i].rank = rank;
            pop[i].crowding = d;
        }
        if keep.len() + front.len() <= size {
            keep.extend_from_slice(front);
        } else {
            // Largest crowding first, ties in random order.
            let mut order: Vec<usize> = (0..front.len()).collect();
            order.shuffle(rng);
            order.sort_by(|&a, &b| cd[b].total_cmp(&cd[a]));
            let room = size - keep.len();
            keep.extend(order[..room].iter().map(|&o| front[o]));
        }
        if keep.len() >= size {
            break;
        }
    }
    let mut slots: Vec<Option<Individual>> = pop.into_iter().map(Some).collect();
    keep.iter()
        .map(|&i| slots[i].take().expect("each survivor once"))
        .collect()
}

/// Integer SBX + polynomial mutation on the widened real box.
struct Operators {
    lo: Vec<f64>,
    hi: Vec<f64>,
    int_lo: Vec<i64>,
    int_hi: Vec<i64>,
}

impl Operators {
    fn new(bounds: &[(i64, i64)], _params: &Nsga2Params) -> Self {
        Self {
            lo: bounds.iter().map(|b| b.0 as f64 - WIDEN).collect(),
            hi: bounds.iter().map(|b| b.1 as f64 + WIDEN).collect(),
            int_lo: bounds.iter().map(|b| b.0).collect(),
            int_hi: bounds.iter().map(|b| b.1).collect(),
        }
    }

    fn n_var(&self) -> usize {
        self.lo.len()
    }

    /// Children for the next generation: `pop_size` of them, or fewer when
    /// duplicates cannot be avoided.
    fn offspring(
        &self,
        pop: &[Individual],
        params: &Nsga2Params,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Vec<i64>> {
        let wanted = params.pop_size;
        let mut known: HashSet<Vec<i64>> = pop.iter().map(|i| i.x.clone()).collect();
        let mut out: Vec<Vec<i64>> = Vec::with_capacity(wanted);
        for _ in 0..MAX_DUPLICATE_ROUNDS {
            let remaining = wanted - out.len();
            if remaining == 0 {
                break;
            }
            let mut batch = self.mate(pop, remaining, params, rng);
            if params.eliminate_duplicates {
                batch.retain(|x| known.insert(x.clone()));
            }
            batch.truncate(remaining);
            out.extend(batch);
        }
        out
    }

    /// `ceil(n / 2)` matings: tournament selection, SBX, mutation. Children
    /// are returned first children first (pymoo's layout).
    fn mate(
        &self,
        pop: &[Individual],
        n: usize,
        params: &Nsga2Params,
        rng: &mut ChaCha8Rng,
    ) -> Vec<Vec<i64>> {
        let matings = n.div_ceil(2);
        let parents = tournament(pop, matings * 2, rng);
        let mut first = Vec::with_capacity(matings);
        let mut second = Vec::with_capacity(matings);
        for m in 0..matings {
            let a: Vec<f64> = pop[parents[2 * m]].x.iter().map(|&v| v as f64).collect();
            let b: Vec<f64> = pop[parents[2 * m + 1]]
                .x
                .iter()
                .map(|&v| v as f64)
                .collect();
            let (c1, c2) = if rng.random::<f64>() < params.sbx_prob {
                self.sbx(&a, &b, params, rng)
            } else {
                (a, b)
            };
            first.push(c1);
            second.push(c2);
        }
        let pm_prob = params.pm_prob.unwrap_or(1.0 / self.n_var() as f64);
        first
            .into_iter()
            .chain(second)
            .map(|c| {
                let c = self.mutate(c, params.pm_eta, pm_prob, rng);
                self.round(&c)
            })
            .collect()
    }

    /// pymoo 0.5 `SimulatedBinaryCrossover._do` for one pair.
    fn sbx(
        &self,
        p1: &[f64],
        p2: &[f64],
        params: &Nsga2Params,
        rng: &mut ChaCha8Rng,
    ) -> (Vec<f64>, Vec<f64>) {
        let eta = params.sbx_eta;
        let mut c1 = p1.to_vec();
        let mut c2 = p2.to_vec();
        for v in 0..self.n_var() {
            let cross = rng.random::<f64>() <= params.sbx_prob_var;
            let u = rng.random::<f64>();
            let swap = rng.random::<f64>() <= 0.5;
            if !cross || (p1[v] - p2[v]).abs() <= 1e-14 {
                continue;
            }
            let (y1, y2) = if p1[v] < p2[v] {
                (p1[v], p2[v])
            } else {
                (p2[v], p1[v])
            };
            let delta = (y2 - y1).max(1e-10);
            let betaq = |beta: f64| {
                let alpha = 2.0 - beta.powf(-(eta + 1.0));
                if u <= 1.0 / alpha {
                    (u * alpha).powf(1.0 / (eta + 1.0))
                } else {
                    (1.0 / (2.0 - u * alpha)).powf(1.0 / (eta + 1.0))
                }
            };
            let mut a = 0.5 * ((y1 + y2) - betaq(1.0 + 2.0 * (y1 - self.lo[v]) / delta) * delta);
            let mut b = 0.5 * ((y1 + y2) + betaq(1.0 + 2.0 * (self.hi[v] - y2) / delta) * delta);
            if swap {
                std::mem::swap(&mut a, &mut b);
            }
            c1[v] = a.clamp(self.lo[v], self.hi[v]);
            c2[v] = b.clamp(self.lo[v], self.hi[v]);
        }
        (c1, c2)
    }

    /// pymoo 0.5 `PolynomialMutation._do` for one individual.
    fn mutate(&self, mut x: Vec<f64>, eta: f64, prob: f64, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let mut_pow = 1.0 / (eta + 1.0);
        for (v, xv) in x.iter_mut().enumerate() {
            let doit = rng.random::<f64>() < prob;
            if !doit {
                continue;
            }
            let u = rng.random::<f64>();
            let (lo, hi) = (self.lo[v], self.hi[v]);
            let delta1 = (*xv - lo) / (hi - lo);
            let delta2 = (hi - *xv) / (hi - lo);
            let deltaq = if u <= 0.5 {
                let val = 2.0 * u + (1.0 - 2.0 * u) * (1.0 - delta1).powf(eta + 1.0);
                val.powf(mut_pow) - 1.0
            } else {
                let val = 2.0 * (1.0 - u) + 2.0 * (u - 0.5) * (1.0 - delta2).powf(eta + 1.0);
                1.0 - val.powf(mut_pow)
            };
            *xv = (*xv + deltaq * (hi - lo)).clamp(lo, hi);
        }
        x
    }

    /// Round half to even (numpy's `rint`), then into the integer box.
    fn round(&self, x: &[f64]) -> Vec<i64> {
        x.iter()
            .enumerate()
            .map(|(v, &r)| (r.round_ties_even() as i64).clamp(self.int_lo[v], self.int_hi[v]))
            .collect()
    }
}

/// pymoo's binary tournament (`comp_by_dom_and_crowding`) over candidates
/// drawn from concatenated random permutations; returns `n` winners.
fn tournament(pop: &[Individual], n: usize, rng: &mut ChaCha8Rng) -> Vec<usize> {
    let needed = 2 * n;
    let mut cand: Vec<usize> = Vec::with_capacity(needed + pop.len());
    while cand.len() < needed {
        let mut perm: Vec<usize> = (0..pop.len()).collect();
        perm.shuffle(rng);
        cand.extend(perm);
    }
    cand.truncate(needed);
    cand.chunks_exact(2)
        .map(|p| {
            let (a, b) = (p[0], p[1]);
            if dominates(&pop[a].f, &pop[b].f) {
                a
            } else if dominates(&pop[b].f, &pop[a].f) {
                b
            } else {
                match pop[a].crowding.total_cmp(&pop[b].crowding) {
                    Ordering::Greater => a,
                    Ordering::Less => b,
                    Ordering::Equal => {
                        if rng.random::<bool>() {
                            a
                        } else {
                            b
                        }
                    }
                }
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_is_half_even_and_clamped() {
        let ops = Operators::new(&[(0, 3), (0, 3)], &Nsga2Params::default());
        assert_eq!(ops.round(&[0.5, 2.5]), vec![0, 2]);
        assert_eq!(ops.round(&[1.5, 3.4999]), vec![2, 3]);
        assert_eq!(ops.round(&[-0.49, 5.0]), vec![0, 3]);
    }

    #[test]
    fn operators_stay_in_the_box_and_reach_every_value() {
        let bounds = [(0i64, 4i64), (2, 2), (-3, 1)];
        let ops = Operators::new(&bounds, &Nsga2Params::default());
        let params = Nsga2Params {
            pm_prob: Some(1.0),
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let mut hit = vec![HashSet::new(); 3];
        for _ in 0..4000 {
            let a: Vec<f64> = bounds
                .iter()
                .map(|b| rng.random_range(b.0..=b.1) as f64)
                .collect();
            let b: Vec<f64> = bounds
                .iter()
                .map(|b| rng.random_range(b.0..=b.1) as f64)
                .collect();
            let (c1, c2) = ops.sbx(&a, &b, &params, &mut rng);
            for c in [c1, c2] {
                let c = ops.round(&ops.mutate(c, 20.0, 1.0, &mut rng));
                for (v, (&x, b)) in c.iter().zip(&bounds).enumerate() {
                    assert!(b.0 <= x && x <= b.1, "{x} outside {b:?}");
                    hit[v].insert(x);
                }
            }
        }
        assert_eq!(hit[0].len(), 5);
        assert_eq!(hit[1].len(), 1);
        assert_eq!(hit[2].len(), 5);
    }

    #[test]
    fn sbx_without_crossover_probability_keeps_parents() {
        let ops = Operators::new(&[(0, 9); 4], &Nsga2Params::default());
        let params = Nsga2Params {
            sbx_prob_var: 0.0,
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (a, b) = (vec![1.0, 2.0, 3.0, 4.0], vec![9.0, 8.0, 7.0, 6.0]);
        let (c1, c2) = ops.sbx(&a, &b, &params, &mut rng);
        assert_eq!((c1, c2), (a, b));
    }
}
