//! Owns the merge engine's convergence property test (DESIGN.md "Convergence is the law", model.py `check`).
//!
//! 2–5 in-memory databases with the same tracked tables (t1: one TEXT key; t2: a (TEXT, INTEGER)
//! key) take random inserts (INSERT OR REPLACE), updates of column subsets, deletes and key
//! changes on a few shared keys with values of every type; random partial exchanges between
//! random pairs (small limits, duplicated entries, batches applied twice, old batches delivered
//! again out of order, to their receiver or to another peer); skewed clocks; and (manual tables) users resolving conflicts.
//! Then: full exchange until quiet, every pending conflict resolved on random peers, exchange
//! again. Every database must then hold the same tables and vector, verify, hold every change,
//! and every slot must hold the value of its greatest (timestamp, device id) write.
//!
//! `cargo test --release -p peersync-core --test convergence` runs 256 cases per configuration
//! (ten configurations: each strategy and mixed, each in a default and a contention profile);
//! `PEERSYNC_LONG=1` runs 10,000 (`PEERSYNC_CASES=n` runs n); `PEERSYNC_STATS=1` prints what each configuration exercised.
//! The parts: convergence/scenario.rs (what a case is), convergence/world.rs (running it),
//! convergence/check.rs (the final checks).
#[path = "convergence/check.rs"]
mod check;
mod common;
#[path = "convergence/scenario.rs"]
mod scenario;
#[path = "convergence/world.rs"]
mod world;

use proptest::test_runner::TestCaseError;
use scenario::*;
use world::*;

fn property(mode: Mode, profile: Profile) {
    let mut runner = proptest::test_runner::TestRunner::new(common::property_config());
    let total = std::cell::RefCell::new(Stats::default());
    let res = runner.run(&case(mode, profile), |c| {
        let st = run_case(&c).map_err(TestCaseError::fail)?;
        total.borrow_mut().add(&st);
        Ok(())
    });
    if std::env::var("PEERSYNC_STATS").is_ok_and(|v| v == "1") {
        let label = match mode {
            Mode::One(s) => s,
            Mode::Mixed => "mixed",
        };
        eprintln!("stats {label} {profile:?}: {:?}", total.borrow());
    }
    if let Err(e) = res {
        panic!("{e}");
    }
}

macro_rules! configurations {
    ($($name:ident: $mode:expr, $profile:expr;)*) => {$(
        #[test]
        fn $name() {
            property($mode, $profile);
        }
    )*};
}

configurations! {
    converges_timestamp_wins: Mode::One("timestamp_wins"), Profile::Default;
    converges_local_wins: Mode::One("local_wins"), Profile::Default;
    converges_remote_wins: Mode::One("remote_wins"), Profile::Default;
    converges_manual: Mode::One("manual"), Profile::Default;
    converges_mixed_strategies: Mode::Mixed, Profile::Default;
    converges_timestamp_wins_contention: Mode::One("timestamp_wins"), Profile::Contention;
    converges_local_wins_contention: Mode::One("local_wins"), Profile::Contention;
    converges_remote_wins_contention: Mode::One("remote_wins"), Profile::Contention;
    converges_manual_contention: Mode::One("manual"), Profile::Contention;
    converges_mixed_strategies_contention: Mode::Mixed, Profile::Contention;
}
