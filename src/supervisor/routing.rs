//! Where each request number is decided: in the kernel (the filter allows it, or refuses it
//! with an errno) or by the supervisor. Worked out from the families' tables, and the one source
//! of both the filter and the table in `docs/gate.md`.
//!
//! A number a family owns is decided in the kernel when its answer cannot depend on the file
//! or on memory:
//! - allowed when every row the family's table has for it, on any of its fd kinds, is a plain
//!   continue (on a kind without a row, the driver answers it as unknown, exactly as the gate
//!   would);
//! - refused when every kind of the family gets the same denial (a kind without a row gets
//!   the family's unknown errno).
//!
//! Everything else goes to the supervisor: a number with two meanings on two kinds, a
//! by-value or content check, an emulated call. With simulated devices nothing is allowed in
//! the kernel (the files are the simulator's carriers, which know no ioctls), and in audit
//! mode nothing is decided there at all (the supervisor must see every call to report it).
//!
//! Only a family whose numbers no other file takes (its own `_IOC_TYPE`, read in full) has
//! numbers refused in the kernel. A family of plain numbers (NVIDIA UVM's) or one whose driver
//! reads only nr and size (NVIDIA's frontend) shares its numbers with other files: what its
//! table does not let the kernel allow goes to the supervisor, which knows the file. The
//! latter is routed on the canonical form of the number and tested first: a number it sends to
//! the supervisor goes there whatever another family would do with it, and one it lets the
//! kernel allow falls through to the other families' routing.

use nix::errno::Errno;

use super::mode::Mode;
use crate::family::{Action, Decode, Family, Owned};

/// Where a request is decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Placement {
    /// The filter allows it: it reaches the file's driver as it is.
    Allow,
    /// The filter refuses it with this errno.
    Refuse(Errno),
    /// The supervisor decides.
    Supervisor,
}

impl Placement {
    /// How the docs say it.
    pub fn describe(self) -> String {
        match self {
            Self::Allow => "kernel: allow".to_owned(),
            Self::Refuse(errno) => format!("kernel: {errno:?}"),
            Self::Supervisor => "supervisor".to_owned(),
        }
    }
}

/// A run of request numbers with one placement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// First number.
    pub low: u32,
    /// Last number.
    pub high: u32,
    /// Where they are decided.
    pub placement: Placement,
}

/// One family's routing: the numbers it owns, and the placement of every number, as
/// segments that cover `0..=u32::MAX` in order (only owned numbers ever reach them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FamilyRoute {
    /// The family's name.
    pub family: &'static str,
    /// What it owns.
    pub owned: &'static [Owned],
    /// How its drivers read a number: the segments are over canonical forms.
    pub decode: Decode,
    /// Placements, sorted, adjacent, merged where equal.
    pub segments: Vec<Segment>,
}

/// What decides placements besides the tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RouteOptions {
    /// The gate's mode.
    pub mode: Mode,
    /// Whether the devices are simulated.
    pub simulated: bool,
}

/// The placement of `request`, which `family` owns.
pub fn placement(family: &Family, request: u32, options: RouteOptions) -> Placement {
    if options.mode == Mode::Audit {
        return Placement::Supervisor;
    }
    let rows: Vec<Option<Action>> = family
        .kinds
        .iter()
        .map(|kind| family.request(*kind, request).map(|row| row.action))
        .collect();
    let denial = |row: &Option<Action>| match row {
        None => Some(family.unknown_errno),
        Some(Action::Deny(errno)) => Some(*errno),
        Some(_) => None,
    };
    // Where the same bits may be another file's request, the supervisor, which knows the file,
    // refuses it rather than the kernel for all.
    if let Some(Some(first)) = rows.first().map(denial) {
        if rows.iter().all(|row| denial(row) == Some(first)) && family.exclusive() {
            return Placement::Refuse(first);
        }
    }
    let listed = rows.iter().flatten().count();
    let all_continue = rows
        .iter()
        .flatten()
        .all(|action| matches!(action, Action::Continue));
    if listed > 0 && all_continue && !options.simulated {
        return Placement::Allow;
    }
    Placement::Supervisor
}

/// The routing of every family.
pub fn route(families: &[Family], options: RouteOptions) -> Vec<FamilyRoute> {
    families
        .iter()
        .map(|family| FamilyRoute {
            family: family.name,
            owned: family.owned,
            decode: family.decode,
            segments: segments(family, options),
        })
        .collect()
}

fn segments(family: &Family, options: RouteOptions) -> Vec<Segment> {
    // A number the table does not list is refused for every file only where no other file
    // takes it; else the supervisor, which knows the file, answers it.
    let unknown = if options.mode == Mode::Audit || !family.exclusive() {
        Placement::Supervisor
    } else {
        Placement::Refuse(family.unknown_errno)
    };

    let mut listed: Vec<u32> = family.requests.iter().map(|r| r.ioctl.request).collect();
    listed.sort_unstable();
    listed.dedup();
    let mut out: Vec<Segment> = Vec::new();
    let mut push = |low: u32, high: u32, placement: Placement| match out.last_mut() {
        Some(last) if last.placement == placement && last.high.checked_add(1) == Some(low) => {
            last.high = high;
        }
        _ => out.push(Segment {
            low,
            high,
            placement,
        }),
    };
    let mut next = 0u32;
    for request in listed {
        if request > next {
            push(next, request - 1, unknown);
        }
        push(request, request, placement(family, request, options));
        match request.checked_add(1) {
            Some(n) => next = n,
            None => return out,
        }
    }
    push(next, u32::MAX, unknown);
    out
}

/// The markdown table of where each listed request is decided, for `docs/gate.md`.
pub fn table(families: &[Family]) -> String {
    let enforce = RouteOptions {
        mode: Mode::Enforce,
        simulated: false,
    };
    let routes = route(families, enforce);
    let mut out = String::from(
        "| family | request | number | on each fd kind | decided |\n|---|---|---|---|---|\n",
    );
    for family in families {
        let mut listed: Vec<u32> = family.requests.iter().map(|r| r.ioctl.request).collect();
        listed.sort_unstable();
        listed.dedup();
        // Numbers that differ only in size (an array's) and are treated alike share a line.
        // The placement is the filter's, all families together (a UVM number with one of
        // NVIDIA's nrs goes to the supervisor, say).
        let mut lines: Vec<(String, Vec<u32>)> = Vec::new();
        for request in listed {
            let mut names = Vec::new();
            let mut actions = Vec::new();
            for kind in family.kinds {
                match family.request(*kind, request) {
                    Some(row) => {
                        if !names.contains(&row.ioctl.name) {
                            names.push(row.ioctl.name);
                        }
                        let action = match row.action {
                            Action::Deny(errno) => format!("deny {errno:?}"),
                            other => other.label().to_owned(),
                        };
                        actions.push(format!("{kind}: {action}"));
                    }
                    None => actions.push(format!("{kind}: unknown")),
                }
            }
            let key = format!(
                "| {} | {} | {{}} | {} | {} |",
                family.name,
                names.join(" / "),
                actions.join("; "),
                decided(&routes, request).describe()
            );
            match lines.iter_mut().find(|(line, _)| *line == key) {
                Some((_, numbers)) => numbers.push(request),
                None => lines.push((key, vec![request])),
            }
        }
        for (key, numbers) in lines {
            let shown = match numbers.as_slice() {
                [one] => format!("`{one:#x}`"),
                [first, .., last] => {
                    format!("`{first:#x}` … `{last:#x}` ({} sizes)", numbers.len())
                }
                [] => String::new(),
            };
            out.push_str(&key.replacen("{}", &shown, 1));
            out.push('\n');
        }
        let unknown = if family.exclusive() {
            format!("kernel: {:?}", family.unknown_errno)
        } else {
            format!("supervisor: {:?} on its files", family.unknown_errno)
        };
        out.push_str(&format!(
            "| {} | any other number it owns | | unknown | {unknown} |\n",
            family.name
        ));
    }
    out
}

/// Where a filter built from `routes` decides `request`: the first family that reads only nr
/// and size and owns it sends it to the supervisor where its canonical form is placed there;
/// else the family owning it in full decides; a number no family owns is allowed.
pub fn decided(routes: &[FamilyRoute], request: u32) -> Placement {
    let at = |route: &FamilyRoute, number: u32| {
        route
            .segments
            .iter()
            .find(|s| s.low <= number && number <= s.high)
            .map_or(Placement::Allow, |s| s.placement)
    };
    let owns = |route: &FamilyRoute| route.owned.iter().any(|o| o.contains(request));
    for route in routes.iter().filter(|r| r.decode != Decode::Full) {
        if owns(route) && at(route, route.decode.canonical(request)) == Placement::Supervisor {
            return Placement::Supervisor;
        }
    }
    routes
        .iter()
        .filter(|r| r.decode == Decode::Full)
        .find(|r| owns(r))
        .map_or(Placement::Allow, |route| at(route, request))
}
