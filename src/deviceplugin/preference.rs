//! `GetPreferredAllocation`: which of the available devices a container should get.
//!
//! The kubelet's own choice is blind to topology beyond NUMA; the plugin answers with the
//! devices that belong together: the must-include ones kept, then, for TPUs on a host of known
//! layout, a block of chips (a 2×2 sub-slice on an 8-chip host, not a scatter), else devices on
//! the NUMA node(s) of the must-include ones, else on one NUMA node that holds the whole
//! request, in bus order.

use std::collections::{BTreeMap, HashMap};

use super::topology::HostBounds;

/// One device the kubelet offers, with what placement needs to know of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// Its ID.
    pub id: String,
    /// Its NUMA node, when it has one.
    pub numa_node: Option<i32>,
    /// Its place among all the resource's devices in bus order (the chip grid position for
    /// TPUs).
    pub position: usize,
}

/// `size` devices out of `available`, every one of `must_include` among them (the caller has
/// checked that `must_include` ⊆ `available` and `must_include.len() ≤ size ≤
/// available.len()`). The IDs come back in bus order.
pub fn preferred(
    available: &[Candidate],
    must_include: &[String],
    size: usize,
    bounds: Option<&HostBounds>,
) -> Vec<String> {
    let chosen = bounds
        .and_then(|bounds| best_block(available, must_include, size, bounds))
        .unwrap_or_else(|| by_numa(available, must_include, size));
    let mut chosen: Vec<&Candidate> = chosen;
    chosen.sort_by_key(|c| c.position);
    chosen.into_iter().map(|c| c.id.clone()).collect()
}

/// The block of `size` chips, all available and holding every must-include chip, that spans
/// the fewest NUMA nodes; ties go to the order [`HostBounds::blocks`] gives.
fn best_block<'a>(
    available: &'a [Candidate],
    must_include: &[String],
    size: usize,
    bounds: &HostBounds,
) -> Option<Vec<&'a Candidate>> {
    let by_position: HashMap<usize, &Candidate> =
        available.iter().map(|c| (c.position, c)).collect();
    let mut best: Option<(usize, Vec<&Candidate>)> = None;
    for block in bounds.blocks(size) {
        let Some(chips) = block
            .positions
            .iter()
            .map(|p| by_position.get(p).copied())
            .collect::<Option<Vec<&Candidate>>>()
        else {
            continue;
        };
        if !must_include
            .iter()
            .all(|id| chips.iter().any(|c| &c.id == id))
        {
            continue;
        }
        let mut nodes: Vec<Option<i32>> = chips.iter().map(|c| c.numa_node).collect();
        nodes.sort_unstable();
        nodes.dedup();
        if best
            .as_ref()
            .is_none_or(|(spread, _)| nodes.len() < *spread)
        {
            best = Some((nodes.len(), chips));
        }
    }
    best.map(|(_, chips)| chips)
}

/// The must-include devices, then the others by NUMA node: first the nodes the must-include
/// devices are on, then nodes that can hold the rest alone (the smallest such first, leaving
/// larger nodes whole for larger requests), then the others, each in bus order.
fn by_numa<'a>(
    available: &'a [Candidate],
    must_include: &[String],
    size: usize,
) -> Vec<&'a Candidate> {
    let mut chosen: Vec<&Candidate> = available
        .iter()
        .filter(|c| must_include.contains(&c.id))
        .collect();
    let wanted_nodes: Vec<Option<i32>> = chosen.iter().map(|c| c.numa_node).collect();
    let remaining = size.saturating_sub(chosen.len());
    let mut groups: BTreeMap<Option<i32>, Vec<&Candidate>> = BTreeMap::new();
    for candidate in available.iter().filter(|c| !must_include.contains(&c.id)) {
        groups
            .entry(candidate.numa_node)
            .or_default()
            .push(candidate);
    }
    let mut groups: Vec<(Option<i32>, Vec<&Candidate>)> = groups.into_iter().collect();
    for (_, members) in &mut groups {
        members.sort_by_key(|c| c.position);
    }
    groups.sort_by_key(|(node, members)| {
        let holds_rest = members.len() >= remaining;
        (
            !wanted_nodes.contains(node),
            node.is_none(),
            !holds_rest,
            if holds_rest { members.len() } else { 0 },
            *node,
        )
    });
    chosen.extend(
        groups
            .into_iter()
            .flat_map(|(_, members)| members)
            .take(remaining),
    );
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tpuproxy::Generation;

    /// Devices `0..n`, the first `n / 2` on NUMA node 0 and the rest on node 1.
    fn two_nodes(n: usize) -> Vec<Candidate> {
        (0..n)
            .map(|i| Candidate {
                id: format!("d{i}"),
                numa_node: Some(if i < n / 2 { 0 } else { 1 }),
                position: i,
            })
            .collect()
    }

    fn ids(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn must_include_devices_bring_their_numa_neighbours() {
        let all = two_nodes(8);
        assert_eq!(preferred(&all, &ids(&["d5"]), 2, None), ids(&["d4", "d5"]));
        assert_eq!(
            preferred(&all, &ids(&["d6"]), 4, None),
            ids(&["d4", "d5", "d6", "d7"])
        );
        assert_eq!(preferred(&all, &[], 2, None), ids(&["d0", "d1"]));
    }

    #[test]
    fn a_request_goes_to_the_node_that_holds_it_whole() {
        // Node 0 has only d3 left; node 1 has all four.
        let available: Vec<Candidate> = two_nodes(8).into_iter().skip(3).collect();
        assert_eq!(
            preferred(&available, &[], 3, None),
            ids(&["d4", "d5", "d6"])
        );
        // The smallest node that holds the request: d3 alone on node 0.
        assert_eq!(preferred(&available, &[], 1, None), ids(&["d3"]));
        // Larger than any node: spill over in node order.
        assert_eq!(
            preferred(&available, &ids(&["d7"]), 5, None),
            ids(&["d3", "d4", "d5", "d6", "d7"])
        );
    }

    #[test]
    fn tpus_get_a_block_not_a_scatter() {
        let host = HostBounds::of(Generation::V5e, 8).unwrap();
        let all = two_nodes(8);
        assert_eq!(
            preferred(&all, &[], 4, Some(&host)),
            ids(&["d0", "d1", "d2", "d3"])
        );
        // Chip 0 taken: the other aligned 2×2 block, not chips 1–4.
        let without_first: Vec<Candidate> = all[1..].to_vec();
        assert_eq!(
            preferred(&without_first, &[], 4, Some(&host)),
            ids(&["d4", "d5", "d6", "d7"])
        );
        // A must-include chip picks the block that holds it.
        assert_eq!(
            preferred(&all, &ids(&["d6"]), 2, Some(&host)),
            ids(&["d6", "d7"])
        );
        // No block of three: NUMA placement.
        assert_eq!(
            preferred(&without_first, &[], 3, Some(&host)),
            ids(&["d1", "d2", "d3"])
        );
    }

    #[test]
    fn an_unaligned_block_is_taken_when_it_is_the_only_one() {
        let host = HostBounds::of(Generation::V6e, 8).unwrap();
        let all = two_nodes(8);
        let middle: Vec<Candidate> = all
            .iter()
            .filter(|c| [1, 2, 3, 4, 5].contains(&c.position))
            .cloned()
            .collect();
        assert_eq!(
            preferred(&middle, &[], 4, Some(&host)),
            ids(&["d2", "d3", "d4", "d5"])
        );
    }
}
