//! TPU chips as a host lays them out: the chips-per-host bounds of each generation, a chip's
//! place within them, and the sub-slices ("blocks") of the host a request can be given.

use crate::tpuproxy::Generation;

/// Cloud TPU's single-host shapes (`TPU_CHIPS_PER_HOST_BOUNDS`) by generation and number of
/// chips on the host: v4-8 and v5p-8 hosts are 2×2×1, v5litepod-8 and v6e-8 hosts 2×4×1,
/// their 4-chip hosts 2×2×1, a TPU7x host 2×2×1. A host that matches no row has no known
/// layout, and requests there are placed by NUMA node alone.
const HOST_BOUNDS: &[(Generation, usize, [usize; 3])] = &[
    (Generation::V4, 4, [2, 2, 1]),
    (Generation::V5e, 1, [1, 1, 1]),
    (Generation::V5e, 4, [2, 2, 1]),
    (Generation::V5e, 8, [2, 4, 1]),
    (Generation::V5p, 4, [2, 2, 1]),
    (Generation::V6e, 1, [1, 1, 1]),
    (Generation::V6e, 4, [2, 2, 1]),
    (Generation::V6e, 8, [2, 4, 1]),
    (Generation::Tpu7x, 4, [2, 2, 1]),
];

/// The chips of one host as a grid. Chip `k` in PCI bus order sits at
/// `(k mod x, (k / x) mod y, k / (x·y))`: x varies fastest, the order in which libtpu numbers
/// a host's chips (`TPU_VISIBLE_CHIPS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostBounds([usize; 3]);

/// A sub-slice of the host: a box of chips.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// Its sides, x, y, z.
    pub shape: [usize; 3],
    /// Whether it starts at a multiple of its own sides (it then never straddles two of the
    /// boxes the host divides into evenly, as 2×2 halves of a 2×4 host).
    pub aligned: bool,
    /// Its chips' positions in bus order, ascending.
    pub positions: Vec<usize>,
}

impl HostBounds {
    /// The layout of a host with `chips` chips of `generation`, when it is a known one.
    pub fn of(generation: Generation, chips: usize) -> Option<Self> {
        HOST_BOUNDS
            .iter()
            .find(|(g, n, _)| *g == generation && *n == chips)
            .map(|(_, _, bounds)| Self(*bounds))
    }

    /// Its sides, x, y, z.
    pub fn sides(&self) -> [usize; 3] {
        self.0
    }

    /// How many chips it holds.
    pub fn chips(&self) -> usize {
        self.0.iter().product()
    }

    fn coordinates(&self, position: usize) -> [usize; 3] {
        let [x, y, _] = self.0;
        [position % x, (position / x) % y, position / (x * y)]
    }

    fn position(&self, [cx, cy, cz]: [usize; 3]) -> usize {
        let [x, y, _] = self.0;
        cx + x * (cy + y * cz)
    }

    /// Every block of `size` chips: each shape whose sides are powers of two (as every TPU slice
    /// topology's are), multiply to `size` and fit, at every offset. The squarest shapes come first (the fewest chips on the rim), wider in x before
    /// taller (consecutive chips), then aligned offsets before the others, then bus order.
    pub fn blocks(&self, size: usize) -> Vec<Block> {
        let mut shapes = Vec::new();
        for sx in 1..=self.0[0] {
            for sy in 1..=self.0[1] {
                for sz in 1..=self.0[2] {
                    let sides = [sx, sy, sz];
                    if sides.iter().all(|s| s.is_power_of_two()) && sx * sy * sz == size {
                        shapes.push(sides);
                    }
                }
            }
        }
        shapes.sort_by_key(|s| (s.iter().sum::<usize>(), std::cmp::Reverse(s[0])));
        let mut blocks = Vec::new();
        for shape in shapes {
            let mut at_shape = Vec::new();
            for oz in 0..=self.0[2] - shape[2] {
                for oy in 0..=self.0[1] - shape[1] {
                    for ox in 0..=self.0[0] - shape[0] {
                        let offset = [ox, oy, oz];
                        let aligned = (0..3).all(|axis| offset[axis] % shape[axis] == 0);
                        let mut positions = Vec::with_capacity(size);
                        for dz in 0..shape[2] {
                            for dy in 0..shape[1] {
                                for dx in 0..shape[0] {
                                    positions.push(self.position([ox + dx, oy + dy, oz + dz]));
                                }
                            }
                        }
                        positions.sort_unstable();
                        at_shape.push(Block {
                            shape,
                            aligned,
                            positions,
                        });
                    }
                }
            }
            at_shape.sort_by(|a, b| (!a.aligned, &a.positions).cmp(&(!b.aligned, &b.positions)));
            blocks.extend(at_shape);
        }
        blocks
    }

    /// The shape of the chips at `positions` when they are exactly one block of this host.
    pub fn block_shape(&self, positions: &[usize]) -> Option<[usize; 3]> {
        if positions.is_empty() || positions.iter().any(|p| *p >= self.chips()) {
            return None;
        }
        let mut unique = positions.to_vec();
        unique.sort_unstable();
        unique.dedup();
        if unique.len() != positions.len() {
            return None;
        }
        let coordinates: Vec<[usize; 3]> = unique.iter().map(|p| self.coordinates(*p)).collect();
        let mut shape = [0; 3];
        for (axis, side) in shape.iter_mut().enumerate() {
            let low = coordinates.iter().map(|c| c[axis]).min()?;
            let high = coordinates.iter().map(|c| c[axis]).max()?;
            *side = high - low + 1;
        }
        (shape.iter().product::<usize>() == unique.len()).then_some(shape)
    }
}

/// Bounds as libtpu's variables write them: `2,2,1`.
pub fn bounds_text(sides: [usize; 3]) -> String {
    sides.map(|s| s.to_string()).join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_hosts_have_bounds() {
        let v5e = HostBounds::of(Generation::V5e, 8).unwrap();
        assert_eq!((v5e.sides(), v5e.chips()), ([2, 4, 1], 8));
        assert_eq!(
            HostBounds::of(Generation::V5p, 4).unwrap().sides(),
            [2, 2, 1]
        );
        assert_eq!(HostBounds::of(Generation::V5e, 6), None);
        assert_eq!(HostBounds::of(Generation::V4Lite, 4), None);
    }

    #[test]
    fn four_chips_of_eight_are_2x2_blocks_aligned_first() {
        let host = HostBounds::of(Generation::V6e, 8).unwrap();
        let blocks = host.blocks(4);
        let first: Vec<(&[usize], bool)> = blocks
            .iter()
            .take(3)
            .map(|b| (b.positions.as_slice(), b.aligned))
            .collect();
        assert_eq!(
            first,
            [
                (&[0, 1, 2, 3][..], true),
                (&[4, 5, 6, 7][..], true),
                (&[2, 3, 4, 5][..], false)
            ]
        );
        assert!(blocks[..3].iter().all(|b| b.shape == [2, 2, 1]));
        // Then the 1×4 columns, the even and the odd chips.
        assert_eq!(blocks[3].positions, [0, 2, 4, 6]);
        assert_eq!(blocks.len(), 5);
    }

    #[test]
    fn pairs_are_neighbours_in_x_first() {
        let host = HostBounds::of(Generation::V5e, 8).unwrap();
        let blocks = host.blocks(2);
        assert_eq!(blocks[0].positions, [0, 1]);
        assert_eq!(blocks[0].shape, [2, 1, 1]);
        assert!(host.blocks(3).is_empty());
        assert_eq!(host.blocks(8).len(), 1);
    }

    #[test]
    fn block_shapes_are_recognised() {
        let host = HostBounds::of(Generation::V5e, 8).unwrap();
        assert_eq!(host.block_shape(&[2, 3, 0, 1]), Some([2, 2, 1]));
        assert_eq!(host.block_shape(&[6, 7]), Some([2, 1, 1]));
        assert_eq!(host.block_shape(&[1, 2]), None);
        assert_eq!(host.block_shape(&[0, 1, 2, 4]), None);
        assert_eq!(host.block_shape(&[0, 0]), None);
        assert_eq!(host.block_shape(&[8]), None);
        assert_eq!(bounds_text([2, 2, 1]), "2,2,1");
    }
}
