//! Places on Earth and the physics of light between them: named regions, `lat,lon` points,
//! great-circle distance and the minimum delay a message can have.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Speed of light in vacuum, kilometres per second.
pub const LIGHT_KM_PER_S: f64 = 299_792.458;

/// Fraction of `c` that light reaches in optical fibre (refractive index ≈ 1.5).
pub const FIBRE_FRACTION: f64 = 2.0 / 3.0;

/// Mean Earth radius in kilometres (IUGG), used by the haversine formula.
pub const EARTH_RADIUS_KM: f64 = 6_371.0;

/// Named regions with the coordinates of a representative city or data-centre town.
pub const REGIONS: &[(&str, f64, f64)] = &[
    ("new-york", 40.7128, -74.0060),
    ("virginia", 39.0438, -77.4874),
    ("ohio", 39.9612, -82.9988),
    ("california", 37.7749, -122.4194),
    ("oregon", 45.5946, -121.1787),
    ("sao-paulo", -23.5505, -46.6333),
    ("london", 51.5074, -0.1278),
    ("frankfurt", 50.1109, 8.6821),
    ("paris", 48.8566, 2.3522),
    ("stockholm", 59.3293, 18.0686),
    ("johannesburg", -26.2041, 28.0473),
    ("mumbai", 19.0760, 72.8777),
    ("singapore", 1.3521, 103.8198),
    ("tokyo", 35.6762, 139.6503),
    ("seoul", 37.5665, 126.9780),
    ("sydney", -33.8688, 151.2093),
];

/// A point on Earth, optionally carrying the region name it was parsed from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Location {
    /// Region name, or the `lat,lon` text for explicit coordinates.
    pub name: String,
    /// Latitude in degrees, north positive, within [-90, 90].
    pub latitude_deg: f64,
    /// Longitude in degrees, east positive, within [-180, 180].
    pub longitude_deg: f64,
}

/// Why a location could not be parsed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum LocationError {
    /// The name is neither a known region nor `lat,lon`.
    #[error("unknown region `{name}`; known regions: {known}, or give `lat,lon` in degrees")]
    UnknownRegion {
        /// The name given.
        name: String,
        /// The known region names, comma-separated.
        known: String,
    },
    /// `lat,lon` was given but a number is malformed or out of range.
    #[error(
        "bad coordinates `{text}`: latitude must be within [-90, 90] and longitude within [-180, 180]"
    )]
    BadCoordinates {
        /// The text given.
        text: String,
    },
}

impl Location {
    /// Looks up a named region (case-insensitive, `_` and ` ` accepted for `-`).
    pub fn region(name: &str) -> Option<Location> {
        let wanted = name.trim().to_ascii_lowercase().replace(['_', ' '], "-");
        REGIONS.iter().find(|(region, _, _)| *region == wanted).map(
            |&(region, latitude_deg, longitude_deg)| Location {
                name: region.to_string(),
                latitude_deg,
                longitude_deg,
            },
        )
    }

    /// Great-circle distance to `other` in kilometres (haversine on a sphere).
    pub fn distance_km(&self, other: &Location) -> f64 {
        let (lat1, lat2) = (
            self.latitude_deg.to_radians(),
            other.latitude_deg.to_radians(),
        );
        let delta_lat = lat2 - lat1;
        let delta_lon = (other.longitude_deg - self.longitude_deg).to_radians();
        let a = (delta_lat / 2.0).sin().powi(2)
            + lat1.cos() * lat2.cos() * (delta_lon / 2.0).sin().powi(2);
        2.0 * EARTH_RADIUS_KM * a.sqrt().clamp(0.0, 1.0).asin()
    }

    /// Minimum one-way delay to `other` in nanoseconds for light travelling at `fraction` of c.
    pub fn one_way_ns(&self, other: &Location, fraction: f64) -> u64 {
        delay_ns(self.distance_km(other), fraction)
    }
}

/// Time for light at `fraction` of c to cover `distance_km`, in nanoseconds (rounded).
pub fn delay_ns(distance_km: f64, fraction: f64) -> u64 {
    (distance_km / (LIGHT_KM_PER_S * fraction) * 1e9).round() as u64
}

/// The known region names, comma-separated (for error messages and help text).
pub fn known_regions() -> String {
    REGIONS
        .iter()
        .map(|(name, _, _)| *name)
        .collect::<Vec<_>>()
        .join(", ")
}

impl FromStr for Location {
    type Err = LocationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Some(location) = Location::region(text) {
            return Ok(location);
        }
        let Some((latitude, longitude)) = text.split_once(',') else {
            return Err(LocationError::UnknownRegion {
                name: text.to_string(),
                known: known_regions(),
            });
        };
        let bad = || LocationError::BadCoordinates {
            text: text.to_string(),
        };
        let latitude_deg: f64 = latitude.trim().parse().map_err(|_| bad())?;
        let longitude_deg: f64 = longitude.trim().parse().map_err(|_| bad())?;
        if !(-90.0..=90.0).contains(&latitude_deg) || !(-180.0..=180.0).contains(&longitude_deg) {
            return Err(bad());
        }
        Ok(Location {
            name: format!("{latitude_deg},{longitude_deg}"),
            latitude_deg,
            longitude_deg,
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({:.4}, {:.4})",
            self.name, self.latitude_deg, self.longitude_deg
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_york_to_london_is_about_5570_km_and_18_6_ms_at_c() {
        let new_york: Location = "new-york".parse().unwrap();
        let london: Location = "london".parse().unwrap();
        let distance_km = new_york.distance_km(&london);
        assert!((distance_km - 5_570.0).abs() < 15.0, "{distance_km}");
        let one_way_ms = new_york.one_way_ns(&london, 1.0) as f64 / 1e6;
        assert!((one_way_ms - 18.6).abs() < 0.1, "{one_way_ms}");
        let fibre_ms = new_york.one_way_ns(&london, FIBRE_FRACTION) as f64 / 1e6;
        assert!((fibre_ms - 27.9).abs() < 0.1, "{fibre_ms}");
    }

    #[test]
    fn explicit_coordinates_parse_and_unknown_names_list_regions() {
        let point: Location = "51.5,-0.12".parse().unwrap();
        assert!((point.latitude_deg - 51.5).abs() < 1e-9);
        let error = "atlantis".parse::<Location>().unwrap_err();
        assert!(error.to_string().contains("sydney"), "{error}");
        assert!("91,0".parse::<Location>().is_err());
        assert!("x,y".parse::<Location>().is_err());
    }

    #[test]
    fn distance_is_symmetric_and_zero_to_itself() {
        let tokyo = Location::region("Tokyo").unwrap();
        let sydney = Location::region("sydney").unwrap();
        assert_eq!(tokyo.distance_km(&tokyo), 0.0);
        assert!((tokyo.distance_km(&sydney) - sydney.distance_km(&tokyo)).abs() < 1e-9);
    }
}
