//! NSGA-II: non-dominated sorting, crowding distance and hypervolume on
//! textbook cases; a full run on an integer problem with a known Pareto
//! front; determinism under a seed; parameter and objective validation.

use std::collections::BTreeSet;

use wb_kernels::{
    crowding_distance, dominates, hypervolume_2d, non_dominated_sort, nsga2, KernelError,
    Nsga2Error, Nsga2Params,
};

#[test]
fn domination_is_strict_pareto() {
    assert!(dominates(&[1.0, 2.0], &[1.0, 3.0]));
    assert!(dominates(&[0.0, 0.0], &[1.0, 1.0]));
    assert!(!dominates(&[1.0, 2.0], &[1.0, 2.0]), "equal points");
    assert!(!dominates(&[1.0, 3.0], &[2.0, 2.0]), "incomparable");
    assert!(!dominates(&[2.0, 2.0], &[1.0, 3.0]), "incomparable");
}

#[test]
fn non_dominated_sort_textbook() {
    // Three layers: A=(1,5) B=(2,3) C=(4,1) are non-dominated; D=(3,4)
    // (dominated by B) and E=(5,2) (dominated by C) form the second front;
    // F=(5,5) is dominated by D and E.
    let f = [
        [3.0, 4.0], // 0 D
        [1.0, 5.0], // 1 A
        [5.0, 5.0], // 2 F
        [2.0, 3.0], // 3 B
        [5.0, 2.0], // 4 E
        [4.0, 1.0], // 5 C
    ];
    let fronts = non_dominated_sort(&f);
    assert_eq!(fronts, vec![vec![1, 3, 5], vec![0, 4], vec![2]]);
    // Duplicates share a front; an empty input has no front.
    let dup = [[1.0, 1.0], [1.0, 1.0], [2.0, 2.0]];
    assert_eq!(non_dominated_sort(&dup), vec![vec![0, 1], vec![2]]);
    assert!(non_dominated_sort::<[f64; 2]>(&[]).is_empty());
    // Three objectives.
    let f3 = [[1.0, 2.0, 3.0], [3.0, 2.0, 1.0], [2.0, 3.0, 4.0]];
    assert_eq!(non_dominated_sort(&f3), vec![vec![0, 1], vec![2]]);
}

#[test]
fn crowding_distance_textbook() {
    // Front (1,5) (2,3) (3,2) (5,1): ranges 4 and 4.
    // (2,3): (3−1)/4 + (5−2)/4 = 1.25; (3,2): (5−2)/4 + (3−1)/4 = 1.25.
    let f = [[2.0, 3.0], [1.0, 5.0], [5.0, 1.0], [3.0, 2.0]];
    let cd = crowding_distance(&f);
    assert_eq!(cd[1], f64::INFINITY);
    assert_eq!(cd[2], f64::INFINITY);
    assert!((cd[0] - 1.25).abs() < 1e-12, "{cd:?}");
    assert!((cd[3] - 1.25).abs() < 1e-12, "{cd:?}");
    // Uneven spacing: (0,10) (1,9) (9,1) (10,0): middle points get
    // (9−0)/10 + (10−1)/10 = 1.8 and (10−1)/10 + (9−0)/10 = 1.8; with
    // (0,10) (4,6) (5,5) (10,0): (5−0)/10 + (10−5)/10 = 1.0 and
    // (10−4)/10 + (6−0)/10 = 1.2.
    let g = [[0.0, 10.0], [4.0, 6.0], [5.0, 5.0], [10.0, 0.0]];
    let cd = crowding_distance(&g);
    assert!(
        (cd[1] - 1.0).abs() < 1e-12 && (cd[2] - 1.2).abs() < 1e-12,
        "{cd:?}"
    );
    // At most two points: all infinite.
    assert_eq!(
        crowding_distance(&[[1.0, 2.0], [2.0, 1.0]]),
        vec![f64::INFINITY; 2]
    );
    assert_eq!(crowding_distance(&[[1.0, 2.0]]), vec![f64::INFINITY]);
    // A duplicate gets 0; its first occurrence the distance among the distinct
    // points (1,5) (2,3) (5,1): (5−1)/4 + (5−1)/4 = 2.
    let d = [[1.0, 5.0], [2.0, 3.0], [2.0, 3.0], [5.0, 1.0]];
    let cd = crowding_distance(&d);
    assert!((cd[1] - 2.0).abs() < 1e-12, "{cd:?}");
    assert_eq!(cd[2], 0.0);
    // A constant objective adds nothing (no division by zero).
    let c = [[1.0, 7.0], [2.0, 7.0], [4.0, 7.0]];
    let cd = crowding_distance(&c);
    assert_eq!(cd[0], f64::INFINITY);
    assert_eq!(cd[2], f64::INFINITY);
    assert!((cd[1] - 1.0).abs() < 1e-12, "(4−1)/3 = 1: {cd:?}");
}

#[test]
fn hypervolume_2d_textbook() {
    let r = [4.0, 4.0];
    assert_eq!(hypervolume_2d(&[[1.0, 1.0]], r), 9.0);
    // Staircase (1,3) (2,2) (3,1) against (4,4): 3 + 2 + 1 = 6.
    assert_eq!(
        hypervolume_2d(&[[3.0, 1.0], [1.0, 3.0], [2.0, 2.0]], r),
        6.0
    );
    // Dominated and duplicate points add nothing; points beyond the reference neither.
    assert_eq!(
        hypervolume_2d(
            &[
                [1.0, 3.0],
                [2.0, 2.0],
                [3.0, 1.0],
                [3.0, 3.0],
                [2.0, 2.0],
                [5.0, 0.0]
            ],
            r
        ),
        6.0
    );
    assert_eq!(hypervolume_2d(&[], r), 0.0);
    assert_eq!(hypervolume_2d(&[[4.0, 1.0]], r), 0.0);
}

/// Minimise `(x0, (9 − x0) + Σ_{i≥1} x_i)` over `x ∈ [0, 9]^n`: the Pareto
/// front is `x_i = 0` for `i ≥ 1`, i.e. the ten points `(t, 9 − t)`.
fn staircase(x: &[i64]) -> Result<Vec<f64>, String> {
    let rest: i64 = x[1..].iter().sum();
    Ok(vec![x[0] as f64, (9 - x[0] + rest) as f64])
}

#[test]
fn finds_the_known_front_and_is_deterministic() {
    let bounds = vec![(0i64, 9i64); 6];
    let params = Nsga2Params {
        pop_size: 20,
        generations: 60,
        seed: 7,
        ..Default::default()
    };
    let mut history = Vec::new();
    let res = nsga2(&bounds, &params, staircase, |g| {
        let pts: Vec<[f64; 2]> = g
            .population
            .iter()
            .filter(|i| i.rank == 0)
            .map(|i| [i.f[0], i.f[1]])
            .collect();
        history.push((
            g.generation,
            g.evaluations,
            hypervolume_2d(&pts, [10.0, 60.0]),
        ));
    })
    .unwrap();
    assert_eq!(res.generations, 60);
    assert_eq!(history.len(), 60);
    assert_eq!(
        history[0].1, 20,
        "generation 1 evaluates the initial population"
    );
    assert!(res.evaluations <= 20 * 60);
    // Survival keeps the best front, so the hypervolume never decreases.
    for w in history.windows(2) {
        assert!(w[1].2 >= w[0].2 - 1e-9, "hypervolume fell: {w:?}");
    }
    let front = res.front();
    let points: BTreeSet<(i64, i64)> = front
        .iter()
        .map(|i| (i.f[0] as i64, i.f[1] as i64))
        .collect();
    for i in &front {
        assert!(
            i.x[1..].iter().all(|&v| v == 0),
            "off-front point {:?}",
            i.x
        );
    }
    assert!(points.len() >= 9, "front covers {points:?}");
    // Best possible hypervolume with all ten points: Σ_t (10 − t)·(60 − (9 − t)) … compare
    // with the value recomputed from the points.
    let best: f64 = hypervolume_2d(
        &(0..10)
            .map(|t| [t as f64, (9 - t) as f64])
            .collect::<Vec<_>>(),
        [10.0, 60.0],
    );
    assert!(history.last().unwrap().2 >= 0.99 * best);

    // Same seed: identical run; another seed: a different path.
    let again = nsga2(&bounds, &params, staircase, |_| {}).unwrap();
    assert_eq!(again, res);
    let other = nsga2(
        &bounds,
        &Nsga2Params { seed: 8, ..params },
        staircase,
        |_| {},
    )
    .unwrap();
    assert_ne!(
        other.population.iter().map(|i| &i.x).collect::<Vec<_>>(),
        res.population.iter().map(|i| &i.x).collect::<Vec<_>>()
    );
}

#[test]
fn no_duplicates_in_population_and_bounds_respected() {
    let bounds = vec![(0i64, 2i64), (5, 6), (-1, 1)];
    let params = Nsga2Params {
        pop_size: 8,
        generations: 15,
        seed: 1,
        ..Default::default()
    };
    let mut all_seen = Vec::new();
    let res = nsga2(
        &bounds,
        &params,
        |x| {
            all_seen.push(x.to_vec());
            Ok::<_, String>(vec![x[0] as f64 + x[2] as f64, (x[1] - x[0]) as f64])
        },
        |g| {
            let set: BTreeSet<&Vec<i64>> = g.population.iter().map(|i| &i.x).collect();
            assert_eq!(set.len(), g.population.len(), "duplicate in population");
        },
    )
    .unwrap();
    assert_eq!(res.population.len(), 8);
    for x in &all_seen {
        for (v, b) in x.iter().zip(&bounds) {
            assert!(b.0 <= *v && *v <= b.1);
        }
    }
}

#[test]
fn tiny_space_is_exhausted_without_looping_forever() {
    // Two points in the whole box; a population of 10 cannot be filled.
    let bounds = vec![(0i64, 1i64), (3, 3)];
    let params = Nsga2Params {
        pop_size: 10,
        generations: 5,
        ..Default::default()
    };
    let mut evals = 0;
    let res = nsga2(
        &bounds,
        &params,
        |x| {
            evals += 1;
            Ok::<_, String>(vec![x[0] as f64, 1.0 - x[0] as f64])
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(res.population.len(), 2);
    assert_eq!(evals, 2, "every configuration evaluated once");
}

#[test]
fn invalid_input_is_rejected() {
    let ok = |_: &[i64]| Ok::<_, String>(vec![0.0, 0.0]);
    let p = Nsga2Params::default();
    let bad = |r: Result<_, Nsga2Error<String>>, field: &str| match r {
        Err(Nsga2Error::Invalid(KernelError::InvalidParameter { name, .. })) => {
            assert_eq!(name, field)
        }
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    bad(
        nsga2(&[(0, 1)], &Nsga2Params { pop_size: 1, ..p }, ok, |_| {}),
        "pop_size",
    );
    bad(
        nsga2(&[(0, 1)], &Nsga2Params { sbx_prob: 1.5, ..p }, ok, |_| {}),
        "sbx_prob",
    );
    bad(nsga2(&[], &p, ok, |_| {}), "bounds");
    bad(nsga2(&[(2, 1)], &p, ok, |_| {}), "bounds");
    bad(
        nsga2(&[(0, 1)], &p, |_| Ok::<_, String>(vec![f64::NAN]), |_| {}),
        "objectives",
    );
    match nsga2(
        &[(0, 1)],
        &p,
        |_| Err::<Vec<f64>, _>("boom".to_string()),
        |_| {},
    ) {
        Err(Nsga2Error::Evaluation(e)) => assert_eq!(e, "boom"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn given_initial_population_is_generation_one_without_duplicates() {
    use wb_kernels::nsga2_with_initial;
    let params = Nsga2Params {
        pop_size: 6,
        generations: 1,
        seed: 3,
        ..Nsga2Params::default()
    };
    let initial: Vec<Vec<i64>> = vec![vec![2], vec![5], vec![5], vec![9], vec![12]];
    let mut seen = Vec::new();
    let r = nsga2_with_initial(
        &[(2, 12)],
        &params,
        &initial,
        |x| {
            seen.push(x[0]);
            Ok::<_, ()>(vec![x[0] as f64, -(x[0] as f64)])
        },
        |_| {},
    )
    .unwrap();
    assert_eq!(seen, vec![2, 5, 9, 12], "duplicates dropped, order kept");
    assert_eq!(r.population.len(), 4);
    // Outside the box or the wrong length: refused before any evaluation.
    for bad in [vec![vec![13]], vec![vec![2, 3]], vec![]] {
        let e = nsga2_with_initial(
            &[(2, 12)],
            &params,
            &bad,
            |_| Ok::<_, ()>(vec![0.0]),
            |_| {},
        );
        assert!(e.is_err());
    }
}

#[test]
fn seeded_population_starts_with_the_seeds_then_fills_at_random() {
    use wb_kernels::nsga2_seeded;
    let bounds = [(0, 20), (0, 20)];
    let params = Nsga2Params {
        pop_size: 8,
        generations: 3,
        seed: 11,
        ..Nsga2Params::default()
    };
    let f = |x: &[i64]| Ok::<_, ()>(vec![x[0] as f64, (20 - x[0]) as f64 + x[1] as f64]);
    let seeds: Vec<Vec<i64>> = vec![vec![3, 3], vec![7, 0], vec![3, 3]];
    let mut seen: Vec<Vec<i64>> = Vec::new();
    let r = nsga2_seeded(
        &bounds,
        &params,
        &seeds,
        |x| {
            seen.push(x.to_vec());
            f(x)
        },
        |_| {},
    )
    .unwrap();
    // Generation 1: the two distinct seeds first, then 6 distinct random vectors.
    assert_eq!(seen[0], vec![3, 3]);
    assert_eq!(seen[1], vec![7, 0]);
    let first: BTreeSet<Vec<i64>> = seen[..8].iter().cloned().collect();
    assert_eq!(first.len(), 8, "generation 1 is full and has no duplicate");
    assert_eq!(r.population.len(), 8);

    // Without seeds it is `nsga2`, draw for draw.
    let a = nsga2_seeded(&bounds, &params, &[], f, |_| {}).unwrap();
    let b = nsga2(&bounds, &params, f, |_| {}).unwrap();
    let xs = |r: &wb_kernels::Nsga2Result| -> Vec<Vec<i64>> {
        r.population.iter().map(|i| i.x.clone()).collect()
    };
    assert_eq!(xs(&a), xs(&b));
    assert_eq!(a.evaluations, b.evaluations);
}
