//! One row per round of the window: the consensus share of judged blocks up
//! in the top scope, and each VP's own share (faulty or not, so a dashboard
//! shows the isolated VP's collapse next to the healthy consensus).

use crate::cells::VpRounds;
use crate::scopes::Scopes;
use crate::TimelineRow;

pub(crate) fn build(vp_rounds: VpRounds<'_>, scopes: &Scopes) -> Vec<TimelineRow> {
    let top = scopes.series(0);
    (0..vp_rounds.rounds)
        .map(|r| {
            let a = top[r];
            TimelineRow {
                round: vp_rounds.round_number(r),
                overall: a.down_share().map(|d| 1.0 - d),
                per_vp: (0..vp_rounds.vps)
                    .map(|v| vp_rounds.get(r, v).share_up())
                    .collect(),
            }
        })
        .collect()
}
