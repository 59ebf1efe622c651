//! The district's people for one run, created through the admin API: chiefs spread over the
//! Tianqiao systems, levels and assets, and per system a district supervisor and a department
//! handler.

use serde_json::json;
use sync_core::model::{Asset, Division, DivisionCode, Jurisdiction, Level, Role, System, User};

use crate::http::{Api, Result};

/// The password of every simulated account.
pub const PASSWORD: &str = "fieldsim-passphrase";

#[derive(Debug, Clone)]
pub struct Person {
    pub user: User,
    /// The asset a chief patrols.
    pub asset: Option<Asset>,
}

#[derive(Debug)]
pub struct People {
    pub chiefs: Vec<Person>,
    /// One per system with assets, in `System::ALL` order.
    pub supervisors: Vec<Person>,
    pub handlers: Vec<Person>,
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

pub fn create_people(admin: &Api, devices: usize, seed: u64, concurrency: usize) -> Result<People> {
    let decode = |e: serde_json::Error| e.to_string();
    let divisions: Vec<Division> =
        serde_json::from_value(admin.ok("GET", "/api/v1/admin/divisions", None)?)
            .map_err(decode)?;
    let mut assets: Vec<Asset> =
        serde_json::from_value(admin.ok("GET", "/api/v1/admin/assets", None)?).map_err(decode)?;
    assets.sort_by(|a, b| a.id.cmp(&b.id));
    if assets.is_empty() {
        return Err("the server has no assets: start it with --demo or add some".into());
    }
    let district = divisions
        .iter()
        .find(|d| d.level() == Level::District)
        .ok_or("the server has no district division")?
        .code
        .clone();

    let mut wanted_chiefs = Vec::with_capacity(devices);
    for i in 0..devices {
        let asset = &assets[i % assets.len()];
        // Mostly village chiefs, then subdistrict, a few district chiefs, as in the district.
        let wanted = match i % 10 {
            0 => [Level::District, Level::Subdistrict, Level::Village],
            1..=3 => [Level::Subdistrict, Level::Village, Level::District],
            _ => [Level::Village, Level::Subdistrict, Level::District],
        };
        let division = wanted
            .iter()
            .find_map(|level| at_level(&divisions, &asset.division, *level))
            .ok_or_else(|| format!("no division contains {}", asset.division))?;
        let level = division.level();
        let role = Role::Chief {
            system: asset.system,
            level,
            jurisdiction: Jurisdiction {
                division: division.code.clone(),
                assets: vec![asset.id.clone()],
            },
        };
        let name = format!("{}{}{}号", division.name, asset.system.chief_title(), i + 1);
        wanted_chiefs.push((format!("sim{seed}-chief-{i:04}"), name, role, asset));
    }
    // One account at a time per connection: the server hashes each password (argon2), which
    // is the whole cost of creating an account, so a batch endpoint would save nothing.
    let chiefs = crate::pool(
        &wanted_chiefs,
        concurrency,
        &indicatif::ProgressBar::hidden(),
        |_, (username, name, role, asset)| {
            Ok(Person {
                user: create(admin, username, name, role)?,
                asset: Some((*asset).clone()),
            })
        },
    )?;

    let (mut supervisors, mut handlers) = (Vec::new(), Vec::new());
    for system in System::ALL {
        if !assets.iter().any(|a| a.system == system) {
            continue;
        }
        let role = Role::Supervisor {
            system,
            division: district.clone(),
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
    })
}
