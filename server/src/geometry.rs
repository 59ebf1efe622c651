//! Validation of asset geometry received from administrators: GeoJSON positions must be finite
//! WGS84 `[lon, lat]`, lines need two positions, polygon rings four and must close. Assets that
//! pass can be used by the patrol rules' corridor checks without further guarding.

use sync_core::model::Geometry;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GeometryError {
    #[error("position {0:?} is not a WGS84 [longitude, latitude]")]
    BadPosition([f64; 2]),
    #[error("a LineString needs at least 2 positions, got {0}")]
    ShortLine(usize),
    #[error("a Polygon needs at least one ring")]
    NoRings,
    #[error("polygon ring {ring} needs at least 4 positions, got {len}")]
    ShortRing { ring: usize, len: usize },
    #[error("polygon ring {0} does not end where it starts")]
    OpenRing(usize),
}

fn check_position(p: [f64; 2]) -> Result<(), GeometryError> {
    let [lon, lat] = p;
    if lon.is_finite()
        && lat.is_finite()
        && (-180.0..=180.0).contains(&lon)
        && (-90.0..=90.0).contains(&lat)
    {
        Ok(())
    } else {
        Err(GeometryError::BadPosition(p))
    }
}

pub fn check_geometry(geometry: &Geometry) -> Result<(), GeometryError> {
    match geometry {
        Geometry::LineString(line) => {
            if line.len() < 2 {
                return Err(GeometryError::ShortLine(line.len()));
            }
            line.iter().try_for_each(|p| check_position(*p))
        }
        Geometry::Polygon(rings) => {
            if rings.is_empty() {
                return Err(GeometryError::NoRings);
            }
            for (i, ring) in rings.iter().enumerate() {
                if ring.len() < 4 {
                    return Err(GeometryError::ShortRing {
                        ring: i,
                        len: ring.len(),
                    });
                }
                ring.iter().try_for_each(|p| check_position(*p))?;
                if ring.first() != ring.last() {
                    return Err(GeometryError::OpenRing(i));
                }
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_and_names_the_fault() {
        let line = Geometry::LineString(vec![[116.98, 36.70], [116.99, 36.71]]);
        assert_eq!(check_geometry(&line), Ok(()));
        let square = vec![
            [117.0, 36.7],
            [117.01, 36.7],
            [117.01, 36.71],
            [117.0, 36.7],
        ];
        assert_eq!(
            check_geometry(&Geometry::Polygon(vec![square.clone()])),
            Ok(())
        );
        assert_eq!(
            check_geometry(&Geometry::LineString(vec![[116.98, 36.70]])),
            Err(GeometryError::ShortLine(1))
        );
        assert_eq!(
            check_geometry(&Geometry::LineString(vec![[116.98, 36.7], [200.0, 36.7]])),
            Err(GeometryError::BadPosition([200.0, 36.7]))
        );
        assert!(check_geometry(&Geometry::LineString(vec![[f64::NAN, 0.0], [0.0, 0.0]])).is_err());
        assert_eq!(
            check_geometry(&Geometry::LineString(vec![[36.7, 116.98], [36.7, 116.99]])),
            Err(GeometryError::BadPosition([36.7, 116.98])),
            "latitude and longitude swapped"
        );
        let open = vec![
            [117.0, 36.7],
            [117.01, 36.7],
            [117.01, 36.71],
            [117.0, 36.71],
        ];
        assert_eq!(
            check_geometry(&Geometry::Polygon(vec![open])),
            Err(GeometryError::OpenRing(0))
        );
        assert_eq!(
            check_geometry(&Geometry::Polygon(vec![])),
            Err(GeometryError::NoRings)
        );
        assert_eq!(
            check_geometry(&Geometry::Polygon(vec![square[..3].to_vec()])),
            Err(GeometryError::ShortRing { ring: 0, len: 3 })
        );
    }
}
