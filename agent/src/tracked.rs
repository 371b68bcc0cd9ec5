//! A campaign's block trackers, addressed by index: one vector sorted by
//! block, so that a round's slices are lists of indices and its outcomes
//! are applied by index, without a lookup per block or a sort.
//!
//! Blocks that join while a round runs (discovery goes on beside it) are
//! appended after the sorted part, so the indices the round holds stay
//! valid; [`Trackers::settle`] merges them in once the round is over (and
//! `campaign::plan` and `state::save` settle too). Until then, iteration
//! yields the sorted part, then the joined blocks in the order they came.
//!
//! The map-like methods (`get`, `insert`, `values`, ...) follow
//! `BTreeMap<IpNet, BlockTracker>`, which this replaces: a tracker costs its
//! 88 bytes and nothing else (a B-tree added ~20 per block), and a round
//! of millions of blocks does no lookup by block.

use std::collections::BTreeMap;
use std::ops::Index;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::belief::{BlockTracker, RoundOutcome};

/// The trackers of one campaign, by block (see the module's docs).
#[derive(Debug, Clone, Default)]
pub struct Trackers {
    /// `list[..sorted]` strictly increasing by block; `list[sorted..]` the
    /// blocks joined since the last [`settle`](Self::settle).
    list: Vec<BlockTracker>,
    sorted: usize,
    /// Where each joined block is in `list`.
    joined: BTreeMap<IpNet, u32>,
}

impl Trackers {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.list.len()
    }

    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub fn clear(&mut self) {
        *self = Self::default();
    }

    /// The index of `block`'s tracker, if it is tracked.
    pub fn index_of(&self, block: &IpNet) -> Option<u32> {
        match self.list[..self.sorted].binary_search_by(|t| t.block.cmp(block)) {
            Ok(i) => Some(i as u32),
            Err(_) => self.joined.get(block).copied(),
        }
    }

    pub fn get(&self, block: &IpNet) -> Option<&BlockTracker> {
        self.index_of(block).map(|i| &self.list[i as usize])
    }

    pub fn get_mut(&mut self, block: &IpNet) -> Option<&mut BlockTracker> {
        self.index_of(block).map(|i| &mut self.list[i as usize])
    }

    pub fn contains_key(&self, block: &IpNet) -> bool {
        self.index_of(block).is_some()
    }

    /// The tracker at `index` (see [`Self::indexed`]).
    pub fn at(&self, index: u32) -> &BlockTracker {
        &self.list[index as usize]
    }

    pub fn at_mut(&mut self, index: u32) -> &mut BlockTracker {
        &mut self.list[index as usize]
    }

    /// Tracks `t` as `block` (which must be `t.block`), replacing and
    /// returning the tracker it had. A new block goes after the others
    /// until the next [`settle`](Self::settle): no index changes.
    pub fn insert(&mut self, block: IpNet, t: BlockTracker) -> Option<BlockTracker> {
        debug_assert_eq!(block, t.block);
        if let Some(i) = self.index_of(&block) {
            return Some(std::mem::replace(&mut self.list[i as usize], t));
        }
        let i = u32::try_from(self.list.len()).expect("fewer than 2^32 blocks");
        // After the last sorted block, with none joined: still sorted.
        if self.joined.is_empty()
            && self.sorted == self.list.len()
            && self.list.last().is_none_or(|l| l.block < block)
        {
            self.sorted += 1;
        } else {
            self.joined.insert(block, i);
        }
        self.list.push(t);
        None
    }

    /// Merges the blocks joined since the last call into the sorted part.
    /// Indices change: call it only between rounds.
    pub fn settle(&mut self) {
        if self.joined.is_empty() {
            return;
        }
        merge_tail(&mut self.list, self.sorted, |t| t.block);
        self.sorted = self.list.len();
        self.joined.clear();
    }

    /// Keeps the trackers for which `keep` is true (settles first).
    pub fn retain(&mut self, mut keep: impl FnMut(&IpNet, &mut BlockTracker) -> bool) {
        self.settle();
        self.list.retain_mut(|t| {
            let b = t.block;
            keep(&b, t)
        });
        self.sorted = self.list.len();
    }

    /// The trackers with their indices, in the order of [`Self::values`].
    pub fn indexed(&self) -> impl ExactSizeIterator<Item = (u32, &BlockTracker)> + '_ {
        self.list.iter().enumerate().map(|(i, t)| (i as u32, t))
    }

    /// In block order once settled; blocks joined since, after the others.
    pub fn values(&self) -> std::slice::Iter<'_, BlockTracker> {
        self.list.iter()
    }

    pub fn values_mut(&mut self) -> std::slice::IterMut<'_, BlockTracker> {
        self.list.iter_mut()
    }

    pub fn keys(&self) -> impl Iterator<Item = &IpNet> + Clone + '_ {
        self.list.iter().map(|t| &t.block)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&IpNet, &BlockTracker)> + Clone + '_ {
        self.list.iter().map(|t| (&t.block, t))
    }

    /// The blocks whose state (up, down, uncertain) the outcomes in
    /// `slots` (by index, as [`Self::finish_round`] takes them) change.
    pub fn changed_by(&self, slots: &[Option<RoundOutcome>]) -> Vec<IpNet> {
        self.list
            .iter()
            .zip(slots)
            .filter_map(|(t, o)| {
                let mut after = t.clone();
                o.as_ref()?.apply_to(&mut after);
                (after.state() != t.state()).then_some(t.block)
            })
            .collect()
    }

    /// Ends a round: applies each outcome of `slots` (indexed as the
    /// trackers, `None` for blocks not probed) to its tracker as it is now
    /// ([`RoundOutcome::apply_to`]), settles, and returns the outcomes in
    /// block order. No lookup, no sort but of the blocks that joined
    /// during the round.
    pub fn finish_round(&mut self, mut slots: Vec<Option<RoundOutcome>>) -> Vec<RoundOutcome> {
        for (t, o) in self.list.iter_mut().zip(&slots) {
            if let Some(o) = o {
                o.apply_to(t);
            }
        }
        let sorted = self.sorted.min(slots.len());
        let joined: Vec<RoundOutcome> = slots.drain(sorted..).flatten().collect();
        self.settle();
        // In place: an `Option<RoundOutcome>` is the size of one, and a
        // `filter_map` is collected into the vector it consumes (`flatten`
        // is not: 41 B more per block at the round's peak).
        #[allow(clippy::filter_map_identity)]
        let mut out: Vec<RoundOutcome> = slots.into_iter().filter_map(|o| o).collect();
        let n = out.len();
        out.extend(joined);
        merge_tail(&mut out, n, |o| o.block);
        out
    }
}

/// Sorts `v[sorted..]` by `key` and merges it into `v[..sorted]` (already
/// sorted): O(n) moves and a copy of the tail only, no buffer the size
/// of `v`. Keys are distinct.
fn merge_tail<T: Clone, K: Ord>(v: &mut [T], sorted: usize, key: impl Fn(&T) -> K) {
    if sorted == v.len() {
        return;
    }
    let mut tail: Vec<T> = v[sorted..].to_vec();
    tail.sort_unstable_by_key(|t| key(t));
    // From the back: `v[k]` is free (its element was copied to `tail` or
    // already moved up), the larger of the two runs' last goes there.
    let (mut i, mut k) = (sorted, v.len());
    while let Some(last) = tail.last() {
        k -= 1;
        if i > 0 && key(&v[i - 1]) > key(last) {
            v.swap(i - 1, k);
            i -= 1;
        } else {
            v[k] = tail.pop().expect("not empty");
        }
    }
}

impl Index<&IpNet> for Trackers {
    type Output = BlockTracker;

    fn index(&self, block: &IpNet) -> &BlockTracker {
        self.get(block).expect("no tracker for this block")
    }
}

impl FromIterator<(IpNet, BlockTracker)> for Trackers {
    fn from_iter<I: IntoIterator<Item = (IpNet, BlockTracker)>>(iter: I) -> Self {
        let mut list: Vec<BlockTracker> = iter
            .into_iter()
            .map(|(b, t)| {
                debug_assert_eq!(b, t.block);
                t
            })
            .collect();
        if !list.windows(2).all(|w| w[0].block < w[1].block) {
            // As a map would: the last tracker of a block wins.
            list.reverse();
            list.sort_by_key(|t| t.block);
            list.dedup_by_key(|t| t.block);
        }
        Trackers {
            sorted: list.len(),
            list,
            joined: BTreeMap::new(),
        }
    }
}

impl<'a> IntoIterator for &'a Trackers {
    type Item = (&'a IpNet, &'a BlockTracker);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'a, BlockTracker>,
        fn(&'a BlockTracker) -> (&'a IpNet, &'a BlockTracker),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.list.iter().map(|t| (&t.block, t))
    }
}

/// As the map it replaces: `{block: tracker}` (the JSON state of earlier
/// versions).
impl Serialize for Trackers {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Trackers {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(BTreeMap::<IpNet, BlockTracker>::deserialize(d)?
            .into_iter()
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use darkwatch_schema::BlockState;
    use std::net::IpAddr;

    fn block(i: u32) -> IpNet {
        IpNet::V4(
            ipnet::Ipv4Net::new(std::net::Ipv4Addr::from(0xC612_0000 + (i << 8)), 24).unwrap(),
        )
    }

    fn tracker(i: u32) -> BlockTracker {
        let IpNet::V4(n) = block(i) else { panic!() };
        let o = n.network().octets();
        BlockTracker::from_discovery(block(i), vec![IpAddr::from([o[0], o[1], o[2], 1])])
    }

    fn blocks(t: &Trackers) -> Vec<IpNet> {
        t.keys().copied().collect()
    }

    #[test]
    fn blocks_joined_keep_indices_until_settled_then_merge_in_order() {
        let mut t: Trackers = [1, 3, 5, 7]
            .map(|i| (block(i), tracker(i)))
            .into_iter()
            .collect();
        let before: Vec<(u32, IpNet)> = t.indexed().map(|(i, x)| (i, x.block)).collect();
        for i in [6, 0, 9, 4] {
            assert!(t.insert(block(i), tracker(i)).is_none());
        }
        // Nothing moved; the joined are found by block and by index.
        for (i, b) in &before {
            assert_eq!(t.at(*i).block, *b);
            assert_eq!(t.index_of(b), Some(*i));
        }
        assert_eq!(t.at(t.index_of(&block(0)).unwrap()).block, block(0));
        assert!(t.contains_key(&block(9)) && !t.contains_key(&block(2)));
        assert_eq!(t.len(), 8);
        // Replacing keeps one tracker per block.
        let mut other = tracker(5);
        other.belief = 0.5;
        assert!(t.insert(block(5), other).is_some());
        assert_eq!((t.len(), t[&block(5)].belief), (8, 0.5));
        t.settle();
        let all: Vec<IpNet> = [0, 1, 3, 4, 5, 6, 7, 9].map(block).to_vec();
        assert_eq!(blocks(&t), all);
        for (i, b) in all.iter().enumerate() {
            assert_eq!(t.index_of(b), Some(i as u32));
        }
        // Appending in order stays sorted without a merge.
        t.insert(block(10), tracker(10));
        assert!(t.joined.is_empty());
        t.retain(|b, _| *b != block(3));
        assert_eq!(blocks(&t), [0, 1, 4, 5, 6, 7, 9, 10].map(block).to_vec());
    }

    #[test]
    fn a_round_applies_outcomes_by_index_and_returns_them_in_block_order() {
        let mut t: Trackers = [2, 4, 6]
            .map(|i| (block(i), tracker(i)))
            .into_iter()
            .collect();
        let mut slots: Vec<Option<RoundOutcome>> = vec![None; t.len()];
        let judge = |t: &mut BlockTracker| {
            let mut x = t.clone();
            x.belief = 0.05;
            let mut o = x.finish_round();
            o.state = BlockState::Down;
            o
        };
        slots[2] = Some(judge(t.at_mut(2)));
        slots[0] = Some(judge(t.at_mut(0)));
        // Joined during the round, probed in a later slice.
        t.insert(block(5), tracker(5));
        t.insert(block(1), tracker(1));
        let j = t.index_of(&block(1)).unwrap() as usize;
        slots.resize(t.len(), None);
        slots[j] = Some(judge(t.at_mut(j as u32)));
        let out = t.finish_round(slots);
        let got: Vec<IpNet> = out.iter().map(|o| o.block).collect();
        assert_eq!(got, [1, 2, 6].map(block).to_vec());
        assert_eq!(blocks(&t), [1, 2, 4, 5, 6].map(block).to_vec());
        for b in [1, 2, 6] {
            assert_eq!(t[&block(b)].belief, 0.05, "{b}");
        }
        for b in [4, 5] {
            assert_eq!(t[&block(b)].belief, 0.99, "{b} not probed");
        }
    }

    #[test]
    fn merge_tail_merges_any_interleaving() {
        for split in 0..=10 {
            let mut v: Vec<u32> = (0..10).filter(|x| x % 3 != 1).collect();
            v.truncate(split.min(v.len()));
            let n = v.len();
            let all: Vec<u32> = (0..20).collect();
            let rest: Vec<u32> = all
                .iter()
                .rev()
                .filter(|x| !v.contains(x))
                .copied()
                .collect();
            v.extend(rest);
            merge_tail(&mut v, n, |x| *x);
            assert_eq!(v, all, "split {split}");
        }
    }

    /// What a block costs at 4.2M blocks (issue 16: at most 200 B a block
    /// in a round): its tracker, held, and its outcome's slot, in a round.
    #[test]
    fn a_tracker_and_a_round_slot_stay_small() {
        assert!(std::mem::size_of::<BlockTracker>() <= 88);
        assert!(std::mem::size_of::<RoundOutcome>() <= 48);
        assert_eq!(
            std::mem::size_of::<Option<RoundOutcome>>(),
            std::mem::size_of::<RoundOutcome>(),
            "a slot costs no more than its outcome"
        );
    }

    #[test]
    fn a_rounds_outcomes_take_the_place_of_its_slots() {
        let mut t: Trackers = (0..100).map(|i| (block(i), tracker(i))).collect();
        let slots: Vec<Option<RoundOutcome>> = (0..100u32)
            .map(|i| (i % 3 != 0).then(|| t.at(i).clone().finish_round()))
            .collect();
        let at = slots.as_ptr() as usize;
        let out = t.finish_round(slots);
        assert_eq!(out.len(), 66);
        assert_eq!(out.as_ptr() as usize, at, "no second vector at the peak");
    }

    #[test]
    fn serializes_as_the_map_it_replaces() {
        let t: Trackers = [3, 1].map(|i| (block(i), tracker(i))).into_iter().collect();
        let map: BTreeMap<IpNet, BlockTracker> =
            [1, 3].map(|i| (block(i), tracker(i))).into_iter().collect();
        let json = serde_json::to_string(&t).unwrap();
        assert_eq!(json, serde_json::to_string(&map).unwrap());
        let back: Trackers = serde_json::from_str(&json).unwrap();
        assert_eq!(blocks(&back), blocks(&t));
    }
}
