//! The district's people for one run, created through the admin API: a chief hierarchy shaped
//! like a real district's 河长制/林长制/田长制, and per system a district supervisor and a
//! department handler.
//!
//! For `N` chiefs about 2 % lead at district level (at least one per system with assets once
//! there are enough chiefs), about 8 % at subdistrict level and the rest at village/community
//! level; each level is shared out over the systems in proportion to the server's assets.
//! Within a system district and village chiefs take its assets in turn, subdistrict chiefs its
//! subdistricts in turn, at most [`SUBDISTRICT_CHIEFS_PER_SUBDISTRICT`] per subdistrict (the
//! demo's farmland all lies in 桑梓店): the rest become village chiefs.
//!
//! A district chief's jurisdiction is the district plus the reach (forest, farmland grid) they
//! lead; a subdistrict chief's is the subdistrict holding that asset plus the asset. A village
//! chief is responsible for their own stretch: a new asset `{asset}·{village}段` (`片` for forests, `网格` for farmland) in a village or community
//! of the asset's subdistrict, with the asset's geometry (the demo's geometry is plausible, not
//! surveyed, and a walk along the whole asset keeps the mix of valid and invalid patrols).
//! Villages are created as needed, at most [`VILLAGES_PER_SUBDISTRICT`] per subdistrict (real
//! ones have 10–48), beginning with those the server already has (桑梓店's real villages). An
//! asset that lies in a village (桑梓店's reaches and farmland grids) has its first village chief
//! there; every other village chief goes to the village of the subdistrict with the fewest
//! chiefs of their system, so beyond the cap chiefs share villages in turn.
//!
//! Why: routing gives a chief every document of their system inside their division. With most
//! chiefs at village level, each on their own stretch, a phone receives its village's documents
//! and only the few district and subdistrict chiefs receive many, as in a district; putting
//! dozens of chiefs on one subdistrict-level reach made every phone receive every other's
//! documents, a fan-out that grows with the square of the phones.
//!
//! Village codes follow the statistical pattern: `001`–`199` communities (居委会),
//! `200`–`399` administrative villages (村委会); a code the server already has is reused, so
//! runs with different seeds share villages, while asset ids and usernames carry the seed.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;
use sync_core::model::{Asset, Division, DivisionCode, Jurisdiction, Level, Role, System, User};

use crate::http::{Api, Result};

/// The password of every simulated account.
pub const PASSWORD: &str = "fieldsim-passphrase";

/// Villages or communities the simulator uses per subdistrict.
pub const VILLAGES_PER_SUBDISTRICT: usize = 30;

/// Subdistrict chiefs of one system in one subdistrict at most (a real one has a few: the
/// party secretary, the head, a deputy or two); more become village chiefs.
pub const SUBDISTRICT_CHIEFS_PER_SUBDISTRICT: usize = 6;

/// Share of the chiefs at district and at subdistrict level; the rest are village chiefs.
const DISTRICT_SHARE: f64 = 0.02;
const SUBDISTRICT_SHARE: f64 = 0.08;

const MAX_ASSET_ID_CHARS: usize = 64;

#[derive(Debug, Clone)]
pub struct Person {
    pub user: User,
    /// The asset a chief patrols.
    pub asset: Option<Asset>,
}

#[derive(Debug)]
pub struct People {
    /// District chiefs first, then subdistrict, then village chiefs.
    pub chiefs: Vec<Person>,
    /// One per system with assets, in `System::ALL` order.
    pub supervisors: Vec<Person>,
    pub handlers: Vec<Person>,
    /// Villages/communities this run added to the server (others were reused).
    pub divisions_created: usize,
    /// Village chiefs' stretches this run added to the server.
    pub assets_created: usize,
}

/// The department a system's problems are assigned to.
pub fn department(system: System) -> &'static str {
    match system {
        System::River => "区水务局",
        System::Forest => "区园林绿化服务中心",
        System::Field => "区农业农村局",
    }
}

fn create(admin: &Api, username: &str, display_name: &str, role: &Role) -> Result<User> {
    let body = json!({
        "username": username,
        "display_name": display_name,
        "password": PASSWORD,
        "role": role,
    });
    match admin.call("POST", "/api/v1/admin/users", Some(&body))? {
        (201, view) => serde_json::from_value(view["user"].clone()).map_err(|e| e.to_string()),
        (409, _) => Err(format!(
            "{username} already exists on this server: run with another --seed or a fresh server"
        )),
        (status, body) => Err(format!("create {username}: {status} {body}")),
    }
}

/// Creates a place; `Ok(false)` when the server already has it (reused).
fn create_place(admin: &Api, path: &str, body: serde_json::Value) -> Result<bool> {
    match admin.call("POST", path, Some(&body))? {
        (201, _) => Ok(true),
        (409, _) => Ok(false),
        (status, reply) => Err(format!("POST {path} {body}: {status} {reply}")),
    }
}

/// The division at `level` that contains `place`, if the server has one.
fn at_level<'a>(
    divisions: &'a [Division],
    place: &DivisionCode,
    level: Level,
) -> Option<&'a Division> {
    divisions
        .iter()
        .find(|d| d.level() == level && d.code.contains(place))
}

/// Whether an asset is a stretch an earlier run of the simulator created (`sim<seed>-…`).
fn is_simulated(asset: &Asset) -> bool {
    asset.id.strip_prefix("sim").is_some_and(|rest| {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        digits > 0 && rest[digits..].starts_with('-')
    })
}

/// Chiefs at (district, subdistrict, village) level among `n`, with `systems` systems.
fn level_counts(n: usize, systems: usize) -> [usize; 3] {
    let share = |p: f64| (n as f64 * p).round() as usize;
    let mut district = share(DISTRICT_SHARE).max(systems.min(n / 20));
    let mut subdistrict = share(SUBDISTRICT_SHARE).max(systems.min(n / 5));
    if n >= 3 {
        district = district.max(1);
        subdistrict = subdistrict.max(1);
    }
    district = district.min(n);
    subdistrict = subdistrict.min(n - district);
    [district, subdistrict, n - district - subdistrict]
}

/// `count` shared out in proportion to `weights` (largest remainder), at least one each when
/// there are enough.
fn shares(count: usize, weights: &[usize]) -> Vec<usize> {
    let total = weights.iter().sum::<usize>().max(1) as f64;
    let quota: Vec<f64> = weights
        .iter()
        .map(|&w| count as f64 * w as f64 / total)
        .collect();
    let at_least_one = count >= weights.len();
    let mut n: Vec<usize> = quota
        .iter()
        .map(|q| {
            let floor = q.floor() as usize;
            if at_least_one {
                floor.max(1)
            } else {
                floor
            }
        })
        .collect();
    let pick = |n: &[usize], score: &dyn Fn(usize) -> Option<f64>| {
        (0..n.len())
            .filter_map(|i| score(i).map(|s| (i, s)))
            .fold(None, |best: Option<(usize, f64)>, (i, s)| match best {
                Some((_, b)) if b >= s => best,
                _ => Some((i, s)),
            })
            .map(|(i, _)| i)
    };
    while n.iter().sum::<usize>() < count {
        let Some(i) = pick(&n, &|i| Some(quota[i] - n[i] as f64)) else {
            break;
        };
        n[i] += 1;
    }
    while n.iter().sum::<usize>() > count {
        let Some(i) = pick(&n, &|i| (n[i] > 1).then(|| n[i] as f64 - quota[i])) else {
            break;
        };
        n[i] -= 1;
    }
    n
}

/// `count` chiefs over groups of `sizes` members, a group at a time in turn and each group's
/// members in turn, at most `cap` per group: (group, member) of each one placed.
fn spread(count: usize, sizes: &[usize], cap: usize) -> Vec<(usize, usize)> {
    let mut placed = Vec::with_capacity(count);
    for round in 0..cap {
        for (group, &size) in sizes.iter().enumerate() {
            if placed.len() == count {
                return placed;
            }
            if size > 0 {
                placed.push((group, round % size));
            }
        }
    }
    placed
}

/// The villages or communities of one subdistrict the simulator may use: those the server has,
/// then new codes, up to the cap.
fn village_candidates(subdistrict: &Division, divisions: &[Division]) -> Vec<Division> {
    let mut existing: Vec<Division> = divisions
        .iter()
        .filter(|d| d.level() == Level::Village && subdistrict.code.contains(&d.code))
        .cloned()
        .collect();
    existing.sort_by(|a, b| a.code.as_str().cmp(b.code.as_str()));
    let taken: BTreeSet<u32> = existing
        .iter()
        .filter_map(|d| d.code.as_str()[9..].parse().ok())
        .collect();
    let stem = subdistrict
        .name
        .trim_end_matches("街道")
        .trim_end_matches('镇')
        .trim_end_matches('乡');
    // Rural where the server already has administrative villages or a township: new villages;
    // elsewhere new communities.
    let rural = taken.iter().any(|&c| (200..400).contains(&c))
        || subdistrict.name.ends_with('镇')
        || subdistrict.name.ends_with('乡');
    let (first, last) = if rural { (201, 399) } else { (1, 199) };
    let new = (first..=last).filter(|c| !taken.contains(c)).map(|c| {
        let number = if rural { c - 200 } else { c };
        let kind = if rural { "村" } else { "社区" };
        Division {
            code: DivisionCode::new(format!("{}{c:03}", &subdistrict.code.as_str()[..9]))
                .expect("twelve digits"),
            name: format!("{stem}第{number}{kind}"),
            parent: Some(subdistrict.code.clone()),
        }
    });
    existing
        .into_iter()
        .chain(new)
        .take(VILLAGES_PER_SUBDISTRICT)
        .collect()
}

/// A village chief's own stretch of `parent` in `village`.
fn stretch(seed: u64, parent: &Asset, village: &Division, n: usize) -> Asset {
    let mut id = format!("sim{seed}-{}-{}", parent.id, &village.code.as_str()[6..]);
    if id.len() > MAX_ASSET_ID_CHARS {
        id = format!("sim{seed}-stretch-{n:05}");
    }
    let suffix = match parent.system {
        System::River => "段",
        System::Forest => "片",
        System::Field => "网格",
    };
    Asset {
        id,
        system: parent.system,
        name: format!("{}·{}{suffix}", parent.name, village.name),
        division: village.code.clone(),
        geometry: parent.geometry.clone(),
    }
}

/// One chief to create.
struct Wanted {
    level: Level,
    division: Division,
    /// The asset they patrol (for a village chief their own stretch).
    asset: Asset,
}

/// Shares the village chiefs of each system out over villages of their assets' subdistricts.
struct VillagePlan<'a> {
    divisions: &'a [Division],
    candidates: BTreeMap<String, Vec<Division>>,
    /// Chiefs per (subdistrict, system, village).
    load: BTreeMap<(String, System, String), usize>,
    /// Stretches by (parent asset, village).
    stretches: BTreeMap<(String, String), Asset>,
    /// Villages to create, by code.
    new_villages: BTreeMap<String, Division>,
}

impl VillagePlan<'_> {
    fn village_for(&mut self, parent: &Asset, subdistrict: &Division) -> Division {
        let candidates = self
            .candidates
            .entry(subdistrict.code.to_string())
            .or_insert_with(|| village_candidates(subdistrict, self.divisions));
        let load_of = |d: &Division| {
            self.load
                .get(&(
                    subdistrict.code.to_string(),
                    parent.system,
                    d.code.to_string(),
                ))
                .copied()
                .unwrap_or(0)
        };
        let least = candidates.iter().map(load_of).min().unwrap_or(0);
        let first_of_parent = !self.stretches.keys().any(|(p, _)| *p == parent.id);
        let chosen = candidates
            .iter()
            .find(|d| d.code == parent.division && (first_of_parent || load_of(d) == least))
            .or_else(|| candidates.iter().find(|d| load_of(d) == least))
            .expect("a subdistrict has candidate villages")
            .clone();
        *self
            .load
            .entry((
                subdistrict.code.to_string(),
                parent.system,
                chosen.code.to_string(),
            ))
            .or_default() += 1;
        if !self.divisions.iter().any(|d| d.code == chosen.code) {
            self.new_villages
                .insert(chosen.code.to_string(), chosen.clone());
        }
        chosen
    }

    fn stretch(&mut self, seed: u64, parent: &Asset, village: &Division) -> Asset {
        let n = self.stretches.len();
        self.stretches
            .entry((parent.id.clone(), village.code.to_string()))
            .or_insert_with(|| stretch(seed, parent, village, n))
            .clone()
    }
}

pub fn create_people(admin: &Api, devices: usize, seed: u64, concurrency: usize) -> Result<People> {
    let decode = |e: serde_json::Error| e.to_string();
    let divisions: Vec<Division> =
        serde_json::from_value(admin.ok("GET", "/api/v1/admin/divisions", None)?)
            .map_err(decode)?;
    let mut assets: Vec<Asset> =
        serde_json::from_value(admin.ok("GET", "/api/v1/admin/assets", None)?).map_err(decode)?;
    // The district's own assets; stretches of earlier runs are not led by this run's chiefs.
    assets.retain(|a| !is_simulated(a));
    assets.sort_by(|a, b| a.id.cmp(&b.id));
    if assets.is_empty() {
        return Err("the server has no assets: start it with --demo or add some".into());
    }
    let district = divisions
        .iter()
        .find(|d| d.level() == Level::District)
        .ok_or("the server has no district division")?
        .clone();
    let systems: Vec<(System, Vec<&Asset>)> = System::ALL
        .into_iter()
        .map(|s| {
            (
                s,
                assets.iter().filter(|a| a.system == s).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, list)| !list.is_empty())
        .collect();
    let weights: Vec<usize> = systems.iter().map(|(_, list)| list.len()).collect();

    let mut plan = VillagePlan {
        divisions: &divisions,
        candidates: BTreeMap::new(),
        load: BTreeMap::new(),
        stretches: BTreeMap::new(),
        new_villages: BTreeMap::new(),
    };
    // Who leads what, level by level: district chiefs take the system's assets in turn,
    // subdistrict chiefs its subdistricts in turn (a handful each at most, the rest joining the
    // village chiefs), village chiefs its assets in turn.
    let [at_district, at_subdistrict, at_village] = level_counts(devices, systems.len());
    let mut leads: [Vec<&Asset>; 3] = Default::default();
    for (((_, parents), district_n), (subdistrict_n, village_n)) in
        systems.iter().zip(shares(at_district, &weights)).zip(
            shares(at_subdistrict, &weights)
                .into_iter()
                .zip(shares(at_village, &weights)),
        )
    {
        leads[0].extend((0..district_n).map(|k| parents[k % parents.len()]));
        let mut groups: Vec<(&DivisionCode, Vec<&Asset>)> = Vec::new();
        for &parent in parents {
            let Some(subdistrict) = at_level(&divisions, &parent.division, Level::Subdistrict)
            else {
                continue;
            };
            match groups
                .iter_mut()
                .find(|(code, _)| **code == subdistrict.code)
            {
                Some((_, members)) => members.push(parent),
                None => groups.push((&subdistrict.code, vec![parent])),
            }
        }
        let sizes: Vec<usize> = groups.iter().map(|(_, members)| members.len()).collect();
        let placed = spread(subdistrict_n, &sizes, SUBDISTRICT_CHIEFS_PER_SUBDISTRICT);
        leads[1].extend(placed.iter().map(|&(g, m)| groups[g].1[m]));
        let village_n = village_n + subdistrict_n - placed.len();
        leads[2].extend((0..village_n).map(|k| parents[k % parents.len()]));
    }
    let mut wanted: Vec<Wanted> = Vec::with_capacity(devices);
    for (level, parents) in Level::ALL.into_iter().zip(leads) {
        for parent in parents {
            let subdistrict = at_level(&divisions, &parent.division, Level::Subdistrict);
            // An asset with no subdistrict above it can only be led from the district.
            let chief = match (level, subdistrict) {
                (Level::Village, Some(subdistrict)) => {
                    let village = plan.village_for(parent, subdistrict);
                    let asset = plan.stretch(seed, parent, &village);
                    Wanted {
                        level,
                        division: village,
                        asset,
                    }
                }
                (Level::Subdistrict, Some(subdistrict)) => Wanted {
                    level,
                    division: subdistrict.clone(),
                    asset: parent.clone(),
                },
                _ => Wanted {
                    level: Level::District,
                    division: district.clone(),
                    asset: parent.clone(),
                },
            };
            wanted.push(chief);
        }
    }

    // Places first: a role must name existing divisions and assets.
    let hidden = indicatif::ProgressBar::hidden();
    let villages: Vec<Division> = plan.new_villages.into_values().collect();
    let created = crate::pool(&villages, concurrency, &hidden, |_, village| {
        create_place(admin, "/api/v1/admin/divisions", json!(village))
    })?;
    let divisions_created = created.into_iter().filter(|c| *c).count();
    let stretches: Vec<Asset> = plan.stretches.into_values().collect();
    let created = crate::pool(&stretches, concurrency, &hidden, |_, asset| {
        create_place(admin, "/api/v1/admin/assets", json!(asset))
    })?;
    let assets_created = created.into_iter().filter(|c| *c).count();

    // One account at a time per connection: the server hashes each password (argon2), which
    // is the whole cost of creating an account, so a batch endpoint would save nothing.
    let chiefs = crate::pool(&wanted, concurrency, &hidden, |i, chief| {
        let role = Role::Chief {
            system: chief.asset.system,
            level: chief.level,
            jurisdiction: Jurisdiction {
                division: chief.division.code.clone(),
                assets: vec![chief.asset.id.clone()],
            },
        };
        let name = format!(
            "{}{}{}号",
            chief.division.name,
            chief.asset.system.chief_title(),
            i + 1
        );
        Ok(Person {
            user: create(admin, &format!("sim{seed}-chief-{i:04}"), &name, &role)?,
            asset: Some(chief.asset.clone()),
        })
    })?;

    let (mut supervisors, mut handlers) = (Vec::new(), Vec::new());
    for (system, _) in &systems {
        let system = *system;
        let role = Role::Supervisor {
            system,
            division: district.code.clone(),
        };
        let name = format!("区{}办 督查员", system.chief_title());
        let user = create(
            admin,
            &format!("sim{seed}-office-{}", system.as_str()),
            &name,
            &role,
        )?;
        supervisors.push(Person { user, asset: None });
        let role = Role::Handler {
            department: department(system).into(),
        };
        let name = format!("{} 整改专员", department(system));
        let user = create(
            admin,
            &format!("sim{seed}-handler-{}", system.as_str()),
            &name,
            &role,
        )?;
        handlers.push(Person { user, asset: None });
    }
    Ok(People {
        chiefs,
        supervisors,
        handlers,
        divisions_created,
        assets_created,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_district_is_mostly_village_chiefs() {
        assert_eq!(level_counts(1_000, 3), [20, 80, 900]);
        assert_eq!(level_counts(250, 3), [5, 20, 225]);
        assert_eq!(level_counts(100, 3), [3, 8, 89]);
        assert_eq!(level_counts(5, 3), [1, 1, 3]);
        assert_eq!(level_counts(2, 3), [0, 0, 2]);
    }

    #[test]
    fn levels_are_shared_by_assets_and_every_system_has_one() {
        assert_eq!(shares(5, &[18, 6, 6]), [3, 1, 1]);
        assert_eq!(shares(3, &[18, 6, 6]), [1, 1, 1]);
        assert_eq!(shares(1, &[18, 6, 6]), [1, 0, 0]);
        assert_eq!(shares(225, &[18, 6, 6]), [135, 45, 45]);
        assert_eq!(shares(4, &[28, 1, 1]), [2, 1, 1]);
    }

    #[test]
    fn subdistricts_take_chiefs_in_turn_up_to_a_handful() {
        assert_eq!(spread(4, &[2, 1, 3], 6), [(0, 0), (1, 0), (2, 0), (0, 1)]);
        assert_eq!(spread(16, &[6], 6).len(), 6);
        assert_eq!(spread(3, &[], 6), []);
    }
}
