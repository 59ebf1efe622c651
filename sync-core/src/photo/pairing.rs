//! Before and after at the same spot: each after-rectification photo is paired with the before
//! photo taken nearest to it (by their EXIF positions), so a supervisor compares the same view
//! and sees how far apart the two were taken. An after photo taken farther than the office's
//! limit from every before photo may show another stretch of bank than the problem.

use serde::{Deserialize, Serialize};

use crate::geo;
use crate::model::{PhotoRef, PhotoRole};

/// One after photo and the before photo nearest to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhotoPair {
    pub after: String,
    /// The nearest before photo; `None` when either side lacks an EXIF position (then the
    /// first before photo is not guessed at).
    pub before: Option<String>,
    /// Metres between the two positions.
    pub distance_m: Option<f64>,
    /// Whether `distance_m` is beyond the limit the pairing was asked with.
    pub far: bool,
}

/// Pairs every after photo of `photos` with its nearest before photo; after photos come in
/// their order. `warn_m` is the distance beyond which a pair is `far`.
pub fn pair_photos(photos: &[PhotoRef], warn_m: f64) -> Vec<PhotoPair> {
    let befores: Vec<(&str, [f64; 2])> = photos
        .iter()
        .filter(|p| p.role != PhotoRole::After)
        .filter_map(|p| Some((p.sha256.as_str(), p.position?)))
        .collect();
    photos
        .iter()
        .filter(|p| p.role == PhotoRole::After)
        .map(|after| {
            let nearest = after.position.and_then(|[lon, lat]| {
                befores
                    .iter()
                    .map(|(sha, [blon, blat])| (*sha, geo::haversine_m(lat, lon, *blat, *blon)))
                    .min_by(|a, b| a.1.total_cmp(&b.1))
            });
            PhotoPair {
                after: after.sha256.clone(),
                before: nearest.map(|(sha, _)| sha.to_owned()),
                distance_m: nearest.map(|(_, m)| (m * 10.0).round() / 10.0),
                far: nearest.is_some_and(|(_, m)| m > warn_m),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn photo(sha: &str, role: PhotoRole, position: Option<[f64; 2]>) -> PhotoRef {
        PhotoRef {
            sha256: sha.into(),
            role,
            taken_at_ms: None,
            position,
            bytes: 1,
        }
    }

    #[test]
    fn after_photos_pair_with_the_nearest_before_photo() {
        // Two before photos 200 m apart along 小清河; one after photo about 11 m east of the
        // second, one about 90 m from both, one without a position.
        let photos = [
            photo("b1", PhotoRole::Before, Some([116.9700, 36.7200])),
            photo("b2", PhotoRole::Before, Some([116.9722, 36.7200])),
            photo("a1", PhotoRole::After, Some([116.97232, 36.7200])),
            photo("a2", PhotoRole::After, Some([116.9711, 36.7208])),
            photo("a3", PhotoRole::After, None),
        ];
        let pairs = pair_photos(&photos, 30.0);
        assert_eq!(pairs.len(), 3);
        assert_eq!(pairs[0].before.as_deref(), Some("b2"));
        let d = pairs[0].distance_m.unwrap();
        assert!((10.0..13.0).contains(&d), "{d}");
        assert!(!pairs[0].far);
        assert!(pairs[1].far, "{:?}", pairs[1]);
        assert!(pairs[1].distance_m.unwrap() > 30.0);
        assert_eq!(pairs[2].before, None);
        assert!(!pairs[2].far);
        // A stricter office flags the first pair too.
        assert!(pair_photos(&photos, 5.0)[0].far);
    }
}
