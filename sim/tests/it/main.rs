//! The CI-sized week: the simulator, the agent's block logic and the
//! collector's engine on a few thousand blocks, scored, with thresholds
//! taken from what was measured (see `docs/verdicts.md`).

mod week;
