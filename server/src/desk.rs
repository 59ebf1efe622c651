//! What the supervisor's desk needs besides the records themselves, in one call
//! (`GET /api/v1/desk`): the one table of Chinese labels for every code the API speaks
//! (statuses, severities, systems, levels, event kinds, photo roles, patrol-validity and
//! photo-evidence flags with their numbers), the names of the people the caller's records name,
//! and the map's basemap. The page renders codes only through this table, so a label is
//! changed here once.
//!
//! People are named by their display name, which carries their post (小寨村河长 张建国): the
//! law already puts chiefs' names on public signboards by every river, so any signed-in user
//! may read them; nothing else about an account (username, role, devices) is given out.

use std::collections::{BTreeMap, BTreeSet};

use actix_web::{get, web, HttpResponse};
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use crate::auth::Caller;
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use crate::storage::StoreError;
use sync_core::model::{Asset, DivisionCode, Role, System, User};
use sync_core::workflow::{
    check_targets, relations, Action, Assignee, IssueContext, IssueState, Targets, Who,
};

/// How the desk draws its maps and pairs photos.
#[derive(Debug, Clone, PartialEq)]
pub struct DeskSettings {
    /// An XYZ tile URL template (`{z}/{x}/{y}`, optionally `{s}`), e.g. 天地图 with its key.
    /// `None`: the vector layers on a plain background.
    pub tile_url: Option<String>,
    /// The basemap's attribution shown in the map's corner.
    pub tile_attribution: String,
    /// A local PMTiles archive of raster tiles served at `/tiles/{z}/{x}/{y}` (`--tiles`), the
    /// basemap when no `tile_url` is given.
    pub tiles: Option<std::path::PathBuf>,
    /// An after photo taken farther than this from its nearest before photo is flagged.
    pub pair_warn_m: f64,
}

impl Default for DeskSettings {
    fn default() -> Self {
        Self {
            tile_url: None,
            tile_attribution: String::new(),
            tiles: None,
            pair_warn_m: DEFAULT_PAIR_WARN_M,
        }
    }
}

/// After photos farther than this from the nearest before photo are flagged (metres).
pub const DEFAULT_PAIR_WARN_M: f64 = 30.0;

/// Checks a `--tile-url`: an http(s) address with `{z}`, `{x}` and `{y}`.
pub fn parse_tile_url(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the tile URL must start with http:// or https://")?;
    for part in ["{z}", "{x}", "{y}"] {
        if !url.contains(part) {
            return Err(format!("the tile URL lacks {part}"));
        }
    }
    let host = rest.split('/').next().unwrap_or("");
    if host.is_empty() || host.contains(['\'', '"', ' ', ';', ',']) {
        return Err("the tile URL has no usable host".into());
    }
    Ok(url.to_owned())
}

/// The origin the browser fetches tiles from, as a Content-Security-Policy source: a
/// subdomain placeholder (`t{s}.tianditu.gov.cn`) becomes a wildcard (`*.tianditu.gov.cn`).
pub fn tile_source(url: &str) -> Option<String> {
    let (scheme, rest) = url.split_once("://")?;
    let host = rest.split('/').next()?;
    let host = match host.split_once('.') {
        Some((first, tail)) if first.contains('{') => format!("*.{tail}"),
        _ => host.to_owned(),
    };
    if host.contains(['{', '}']) {
        return None;
    }
    Some(format!("{scheme}://{host}"))
}

/// The basemap, if any, as the page needs it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct MapConfig {
    pub tile_url: Option<String>,
    pub attribution: String,
    /// The deepest zoom the basemap has tiles for; the map enlarges them beyond it.
    pub max_native_zoom: Option<u8>,
}

/// The desk's reference data.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DeskData {
    /// Code → Chinese label, by kind (see [`labels`]).
    #[schema(value_type = Object)]
    pub labels: Value,
    /// User id → display name with post.
    pub people: BTreeMap<String, String>,
    pub map: MapConfig,
    /// Metres beyond which an after photo is flagged as taken away from its before photo.
    pub pair_warn_m: f64,
    /// The departments an issue may be assigned to, by name: those of active handlers, the
    /// list the server checks an assignment against.
    pub departments: Vec<String>,
    /// Asset id → the chiefs an issue on that asset may be assigned to by the caller (sync-core's
    /// target check), for the assets the caller supervises; the assign form offers them by name.
    pub assignable_chiefs: BTreeMap<String, Vec<String>>,
}

/// The users an assignment checks against, from one listing of the accounts.
struct Listed<'a>(&'a BTreeMap<String, User>);

impl Targets for Listed<'_> {
    fn user(&self, id: &str) -> Option<User> {
        self.0.get(id).cloned()
    }
    fn department(&self, _name: &str) -> bool {
        false
    }
    fn issue(&self, _id: &str) -> Option<(System, DivisionCode)> {
        None
    }
}

/// The departments of active handlers, sorted, each once.
fn departments(users: &BTreeMap<String, User>) -> Vec<String> {
    let names: BTreeSet<String> = users
        .values()
        .filter(|u| u.active)
        .filter_map(|u| match &u.role {
            Role::Handler { department } => Some(department.clone()),
            _ => None,
        })
        .collect();
    names.into_iter().collect()
}

/// For every asset `by` supervises, the chiefs an issue there may be assigned to: sync-core's
/// relations decide what `by` supervises and its target check who may be told to rectify.
fn assignable_chiefs(
    by: &User,
    assets: &[Asset],
    users: &BTreeMap<String, User>,
) -> BTreeMap<String, Vec<String>> {
    let chiefs: Vec<&User> = users
        .values()
        .filter(|u| u.active && matches!(u.role, Role::Chief { .. }))
        .collect();
    let mut out = BTreeMap::new();
    for asset in assets {
        let ctx = IssueContext {
            system: asset.system,
            division: asset.division.clone(),
            asset: asset.id.clone(),
            reporter: String::new(),
        };
        if !relations(by, &ctx, &IssueState::default()).contains(&Who::Supervisor) {
            continue;
        }
        let ids: Vec<String> = chiefs
            .iter()
            .filter(|c| {
                let action = Action::Assigned {
                    assignee: Assignee::User(c.id.clone()),
                    deadline_ms: 0,
                };
                check_targets(by, &ctx, &action, &Listed(users)).is_ok()
            })
            .map(|c| c.id.clone())
            .collect();
        if !ids.is_empty() {
            out.insert(asset.id.clone(), ids);
        }
    }
    out
}

/// The one label table. Flag templates name the flag's numbers in braces; a `%` after a name
/// shows a share (0–1) as a percentage.
pub fn labels() -> Value {
    json!({
        "status": {
            "reported": "待受理", "accepted": "已受理", "assigned": "整改中",
            "submitted": "待核查", "closed": "已销号", "invalid": "无效", "duplicate": "重复"
        },
        "status_order": ["reported", "accepted", "assigned", "submitted", "closed", "invalid", "duplicate"],
        "status_color": {
            "reported": "#52606d", "accepted": "#1d4ed8", "assigned": "#b45309",
            "submitted": "#6d28d9", "closed": "#15803d", "invalid": "#6b7280", "duplicate": "#be185d"
        },
        "severity": { "general": "一般", "urgent": "紧急", "critical": "特急" },
        "system": { "river": "河长制", "forest": "林长制", "field": "田长制" },
        "asset_kind": { "river": "河段", "forest": "林区", "field": "农田网格" },
        "chief": { "river": "河长", "forest": "林长", "field": "田长" },
        "level": { "district": "区级", "subdistrict": "街道（镇）级", "village": "村级" },
        "event": {
            "reported": "上报", "accepted": "受理", "assigned": "交办",
            "rectification_submitted": "提交整改", "verified": "核查销号", "rejected": "退回整改",
            "invalidated": "认定无效", "duplicate_of": "重复问题", "escalated": "督办",
            "reopened": "重新打开", "comment": "备注"
        },
        "photo_role": { "before": "整改前", "after": "整改后", "evidence": "现场" },
        "period": { "week": "本周", "month": "本月", "quarter": "本季度" },
        "assignee_kind": { "department": "部门", "user": "责任人" },
        "evidence_flag": {
            "missing_exif": "照片没有记录拍摄时间或位置",
            "taken_outside_window": "拍摄时间在巡查时段之外（相差 {minutes} 分钟）",
            "clock_skew": "拍摄时间晚于服务器收到的时间 {seconds} 秒：手机时钟有误",
            "taken_too_early": "拍摄时间早于服务器可确认的最早时间 {minutes} 分钟（手机登录、记录前最后一次同步，整改后照片为问题上报）：可能是旧照片",
            "far_from_place": "拍摄地点距问题位置 {metres} 米"
        }
    })
}

/// Labels, names and the map configuration for the signed-in desk.
#[utoipa::path(
    tag = "dashboard",
    security(("bearer" = [])),
    responses((status = 200, body = DeskData), (status = 401, body = ErrorBody))
)]
#[get("/desk")]
pub async fn get_desk(
    state: web::Data<AppState>,
    caller: Caller,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let (users, assets) =
        web::block(move || Ok::<_, StoreError>((store.list_users()?, store.list_assets()?)))
            .await??;
    let users: BTreeMap<String, User> = users
        .into_iter()
        .map(|r| (r.user.id.clone(), r.user))
        .collect();
    let people = users
        .values()
        .map(|u| (u.id.clone(), u.display_name.clone()))
        .collect();
    let departments = departments(&users);
    let assignable_chiefs = assignable_chiefs(&caller.user, &assets, &users);
    let desk = &state.desk;
    // The local archive is the basemap when no tile service is named; an archive that cannot
    // be read leaves the plain background (and the error in the log) rather than a broken map.
    let local = match (&desk.tile_url, &state.tiles) {
        (None, Some(tiles)) => match tiles.open().await {
            Ok(info) => Some(info),
            Err(e) => {
                tracing::error!(error = %e, "the local basemap cannot be read");
                None
            }
        },
        _ => None,
    };
    Ok(HttpResponse::Ok().json(DeskData {
        labels: labels(),
        people,
        map: MapConfig {
            tile_url: desk
                .tile_url
                .clone()
                .or_else(|| local.map(|_| "/tiles/{z}/{x}/{y}".to_owned())),
            attribution: desk.tile_attribution.clone(),
            max_native_zoom: local.map(|i| i.max_zoom),
        },
        pair_warn_m: desk.pair_warn_m,
        departments,
        assignable_chiefs,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sync_core::model::{Level, Severity};
    use sync_core::workflow::{EventKind, Status};

    /// Every code the API can send has its label, so no page falls back to showing a code.
    #[test]
    fn tile_urls_are_checked_and_allowed_by_origin() {
        let tdt =
            "https://t{s}.tianditu.gov.cn/vec_w/wmts?tk=KEY&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}";
        assert_eq!(parse_tile_url(tdt).unwrap(), tdt);
        assert_eq!(tile_source(tdt).unwrap(), "https://*.tianditu.gov.cn");
        assert_eq!(
            tile_source("http://10.1.2.3:8081/{z}/{x}/{y}.png").unwrap(),
            "http://10.1.2.3:8081"
        );
        assert!(parse_tile_url("ftp://x/{z}/{x}/{y}").is_err());
        assert!(parse_tile_url("https://x/{z}/{x}").is_err());
        assert!(parse_tile_url("https://x';/{z}/{x}/{y}").is_err());
    }

    #[test]
    fn every_code_has_a_label() {
        let l = labels();
        for s in Status::ALL {
            assert!(l["status"][s.as_str()].is_string(), "{}", s.as_str());
            assert!(l["status_color"][s.as_str()].is_string(), "{}", s.as_str());
        }
        for k in EventKind::ALL {
            assert!(l["event"][k.as_str()].is_string(), "{}", k.as_str());
        }
        for lv in Level::ALL {
            assert!(l["level"][lv.as_str()].is_string(), "{}", lv.as_str());
        }
        for sev in [Severity::General, Severity::Urgent, Severity::Critical] {
            let key = serde_json::to_value(sev).unwrap();
            assert!(l["severity"][key.as_str().unwrap()].is_string());
        }
    }
}
