//! peersync's fuzz harnesses (used by fuzz_targets/ and gen_seeds): the world, batch apply, mutations, request signatures, values.
pub mod batch;
pub mod http;
pub mod literals;
pub mod mutate;
pub mod world;
