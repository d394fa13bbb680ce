//! How a conflict on one slot is settled: the table's strategy, read as the rules in README's
//! "Merging and conflicts" say. Every strategy is matched by name, so a new one cannot fall
//! into another's arm.
use crate::model::table::Strategy;

/// One side of a conflict: what this device holds, or the write it received.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Local,
    Remote,
}

impl Side {
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Local => "local",
            Side::Remote => "remote",
        }
    }
}

/// How a conflict was (or is to be) settled, as `sync_conflicts.resolution.strategy` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The winner rule: the greater (timestamp, device id) holds the slot.
    TimestampWins,
    /// A delete against an update it did not see: the delete holds.
    DeleteWins,
    /// Held for a person (`manual`): pending until `sync_resolve`.
    Manual,
    /// Settled at once by a resolution keeping the local side (`local_wins`).
    LocalWins,
    /// Settled at once by a resolution keeping the received side (`remote_wins`).
    RemoteWins,
    /// `local_wins` / `remote_wins` met here after the device that sent the change had met
    /// it (and settled it, by a resolution that follows in its log): no resolution of this
    /// device's own; the winner rule until that one arrives.
    SettledElsewhere,
}

impl How {
    pub fn as_str(self) -> &'static str {
        match self {
            How::TimestampWins => "timestamp_wins",
            How::DeleteWins => "delete_wins",
            How::Manual => "manual",
            How::LocalWins => "local_wins",
            How::RemoteWins => "remote_wins",
            How::SettledElsewhere => "settled_elsewhere",
        }
    }

    /// Whether the conflict waits for a person.
    pub fn is_pending(self) -> bool {
        self == How::Manual
    }

    /// Whether the conflict is settled by a resolution this device writes.
    pub fn by_resolution(self) -> bool {
        matches!(self, How::LocalWins | How::RemoteWins)
    }
}

/// What the table's strategy does with a conflict on one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settle {
    /// By the rules alone (`timestamp_wins`, or both sides are resolutions: resolutions never
    /// cascade): the winner rule for two writes of a slot, delete-wins for a delete against an
    /// update.
    ByRule,
    /// `manual`: the local value stays and a pending conflict waits for a person.
    Hold,
    /// `local_wins` / `remote_wins`: a resolution keeping that side, written at once.
    Resolve(Side),
    /// `local_wins` / `remote_wins` on a conflict the sender of the change met before (it
    /// holds both sides): its resolution settles it; the winner rule meanwhile, and no
    /// resolution here, so a device that meets it late never settles again what was settled.
    Elsewhere,
}

impl Settle {
    /// How a conflict on a table with `strategy` is settled; `resolutions` when both sides of
    /// it are resolutions.
    pub fn of(strategy: Strategy, resolutions: bool) -> Settle {
        if resolutions {
            return Settle::ByRule;
        }
        match strategy {
            Strategy::TimestampWins => Settle::ByRule,
            Strategy::Manual => Settle::Hold,
            Strategy::LocalWins => Settle::Resolve(Side::Local),
            Strategy::RemoteWins => Settle::Resolve(Side::Remote),
        }
    }

    /// What the conflict record says of a conflict settled this way (`rule` when by the rules).
    pub fn how(self, rule: How) -> How {
        match self {
            Settle::ByRule => rule,
            Settle::Hold => How::Manual,
            Settle::Resolve(Side::Local) => How::LocalWins,
            Settle::Resolve(Side::Remote) => How::RemoteWins,
            Settle::Elsewhere => How::SettledElsewhere,
        }
    }

    /// This settlement, given that the device that sent the change already held the other
    /// side (`met`): a resolution becomes [`Settle::Elsewhere`]; anything else stays.
    pub fn met_by_sender(self, met: bool) -> Settle {
        match self {
            Settle::Resolve(_) if met => Settle::Elsewhere,
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_strategy_settles_as_its_name_says() {
        assert_eq!(Settle::of(Strategy::TimestampWins, false), Settle::ByRule);
        assert_eq!(Settle::of(Strategy::Manual, false), Settle::Hold);
        assert_eq!(Settle::of(Strategy::LocalWins, false), Settle::Resolve(Side::Local));
        assert_eq!(Settle::of(Strategy::RemoteWins, false), Settle::Resolve(Side::Remote));
        for s in [Strategy::TimestampWins, Strategy::Manual, Strategy::LocalWins, Strategy::RemoteWins] {
            assert_eq!(
                Settle::of(s, true),
                Settle::ByRule,
                "resolutions on both sides: the rules, never a further resolution"
            );
        }
        assert_eq!(Settle::ByRule.how(How::DeleteWins), How::DeleteWins);
        assert_eq!(Settle::Hold.how(How::TimestampWins), How::Manual);
        assert_eq!(Settle::Resolve(Side::Local).how(How::TimestampWins), How::LocalWins);
        assert_eq!(Settle::Resolve(Side::Remote).how(How::TimestampWins), How::RemoteWins);
        assert!(How::Manual.is_pending() && !How::LocalWins.is_pending() && !How::TimestampWins.is_pending());
        assert!(How::LocalWins.by_resolution() && How::RemoteWins.by_resolution());
        assert!(
            !How::Manual.by_resolution() && !How::DeleteWins.by_resolution() && !How::TimestampWins.by_resolution()
        );
        let names: Vec<&str> =
            [How::TimestampWins, How::DeleteWins, How::Manual, How::LocalWins, How::RemoteWins, How::SettledElsewhere]
                .iter()
                .map(|h| h.as_str())
                .collect();
        assert_eq!(
            names,
            ["timestamp_wins", "delete_wins", "manual", "local_wins", "remote_wins", "settled_elsewhere"]
        );
        // A conflict the sender met is settled by its resolution, never by a second one here.
        assert_eq!(Settle::Resolve(Side::Local).met_by_sender(true), Settle::Elsewhere);
        assert_eq!(Settle::Resolve(Side::Remote).met_by_sender(false), Settle::Resolve(Side::Remote));
        assert_eq!(Settle::Hold.met_by_sender(true), Settle::Hold);
        assert_eq!(Settle::ByRule.met_by_sender(true), Settle::ByRule);
        assert_eq!(Settle::Elsewhere.how(How::TimestampWins), How::SettledElsewhere);
        assert!(!How::SettledElsewhere.is_pending() && !How::SettledElsewhere.by_resolution());
        assert_eq!((Side::Local.as_str(), Side::Remote.as_str()), ("local", "remote"));
    }
}
