//! `concur delay FROM TO`: how far apart two places are and how long light needs between them —
//! the floor under every round trip a distributed protocol makes.

use std::process::ExitCode;

use anyhow::Context as _;
use sim::geo::{self, FIBRE_FRACTION, Location};

/// Arguments of `concur delay`.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!(
    "Places: a region name (new-york, virginia, ohio, california, oregon, sao-paulo, london, ",
    "frankfurt, paris, stockholm, johannesburg, mumbai, singapore, tokyo, seoul, sydney) or ",
    "`lat,lon` in degrees, e.g. `51.5,-0.12`."
))]
pub struct Args {
    /// Where the message starts: a region name or `lat,lon`.
    #[arg(allow_hyphen_values = true)]
    pub from: String,
    /// Where it arrives: a region name or `lat,lon`.
    #[arg(allow_hyphen_values = true)]
    pub to: String,
}

/// Prints distance and minimum one-way and round-trip delays in vacuum and in fibre.
pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let from: Location = args.from.parse().context("FROM")?;
    let to: Location = args.to.parse().context("TO")?;
    print!("{}", report(&from, &to));
    Ok(ExitCode::SUCCESS)
}

/// The text `concur delay` prints.
pub fn report(from: &Location, to: &Location) -> String {
    let distance_km = from.distance_km(to);
    let vacuum_ms = geo::delay_ns(distance_km, 1.0) as f64 / 1e6;
    let fibre_ms = geo::delay_ns(distance_km, FIBRE_FRACTION) as f64 / 1e6;
    format!(
        "from      {from}\n\
         to        {to}\n\
         distance  {distance_km:.0} km (great circle)\n\
         \n\
         {:<22}{:>10}{:>12}\n\
         {:<22}{:>7.1} ms{:>9.1} ms\n\
         {:<22}{:>7.1} ms{:>9.1} ms\n\
         \n\
         No protocol can beat these: a quorum round trip between these places costs at least the\n\
         fibre round trip, before any processing or queueing.\n",
        "minimum delay",
        "one way",
        "round trip",
        "vacuum (c)",
        vacuum_ms,
        2.0 * vacuum_ms,
        "fibre (2/3 c)",
        fibre_ms,
        2.0 * fibre_ms,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_york_london_is_18_6_ms_one_way_at_c() {
        let text = report(&"new-york".parse().unwrap(), &"london".parse().unwrap());
        assert!(text.contains("5570 km"), "{text}");
        assert!(text.contains("18.6 ms"), "{text}");
        assert!(text.contains("37.2 ms"), "{text}");
        assert!(text.contains("27.9 ms"), "{text}");
    }

    #[test]
    fn unknown_place_is_an_error_listing_the_regions() {
        let args = Args {
            from: "atlantis".into(),
            to: "london".into(),
        };
        let error = run(args).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains("unknown region `atlantis`"), "{message}");
        assert!(message.contains("tokyo"), "{message}");
        let known = geo::known_regions();
        assert!(known.contains("sao-paulo"));
    }
}
