//! What the engine reasons about: tracked tables and their strategies, a change's writes and
//! bases, and the hybrid logical clock.
pub mod affinity;
pub mod change;
pub mod clock;
pub mod table;
