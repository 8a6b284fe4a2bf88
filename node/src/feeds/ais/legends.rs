//! Human-readable texts gpsd prints beside coded fields (`status_text`, `shiptype_text`,
//! ...). The wording follows gpsd's JSON so downstream consumers see the same strings.

/// Navigation status (types 1-3, 27), ITU-R M.1371-5.
pub fn nav_status_text(status: u8) -> &'static str {
    const T: [&str; 16] = [
        "Under way using engine",
        "At anchor",
        "Not under command",
        "Restricted maneuverability",
        "Constrained by her draught",
        "Moored",
        "Aground",
        "Engaged in fishing",
        "Under way sailing",
        "Reserved for HSC",
        "Reserved for WIG",
        "Power-driven vessel towing astern",
        "Power-driven vessel pushing ahead or towing alongside",
        "Reserved",
        "AIS-SART is active",
        "Not defined",
    ];
    T.get(status as usize).copied().unwrap_or("Not defined")
}

/// Electronic position-fixing device.
pub fn epfd_text(epfd: u8) -> &'static str {
    const T: [&str; 16] = [
        "Undefined",
        "GPS",
        "GLONASS",
        "Combined GPS/GLONASS",
        "Loran-C",
        "Chayka",
        "Integrated navigation system",
        "Surveyed",
        "Galileo",
        "Reserved (9)",
        "Reserved (10)",
        "Reserved (11)",
        "Reserved (12)",
        "Reserved (13)",
        "Reserved (14)",
        "Internal GNSS",
    ];
    T.get(epfd as usize).copied().unwrap_or("INVALID EPFD")
}

/// Ship and cargo type, 0..=99.
pub fn shiptype_text(shiptype: u8) -> &'static str {
    const T: [&str; 100] = [
        // 0
        "Not available",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        // 10
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        "Reserved for future use",
        // 20
        "Wing in ground (WIG) - all ships of this type",
        "Wing in ground (WIG) - Hazardous category A",
        "Wing in ground (WIG) - Hazardous category B",
        "Wing in ground (WIG) - Hazardous category C",
        "Wing in ground (WIG) - Hazardous category D",
        "Wing in ground (WIG) - Reserved for future use",
        "Wing in ground (WIG) - Reserved for future use",
        "Wing in ground (WIG) - Reserved for future use",
        "Wing in ground (WIG) - Reserved for future use",
        "Wing in ground (WIG) - Reserved for future use",
        // 30
        "Fishing",
        "Towing",
        "Towing: length exceeds 200m or breadth exceeds 25m",
        "Dredging or underwater ops",
        "Diving ops",
        "Military ops",
        "Sailing",
        "Pleasure Craft",
        "Reserved",
        "Reserved",
        // 40
        "High speed craft (HSC) - all ships of this type",
        "High speed craft (HSC) - Hazardous category A",
        "High speed craft (HSC) - Hazardous category B",
        "High speed craft (HSC) - Hazardous category C",
        "High speed craft (HSC) - Hazardous category D",
        "High speed craft (HSC) - Reserved for future use",
        "High speed craft (HSC) - Reserved for future use",
        "High speed craft (HSC) - Reserved for future use",
        "High speed craft (HSC) - Reserved for future use",
        "High speed craft (HSC) - No additional information",
        // 50
        "Pilot Vessel",
        "Search and Rescue vessel",
        "Tug",
        "Port Tender",
        "Anti-pollution equipment",
        "Law Enforcement",
        "Spare - Local Vessel",
        "Spare - Local Vessel",
        "Medical Transport",
        "Ship according to RR Resolution No. 18",
        // 60
        "Passenger - all ships of this type",
        "Passenger - Hazardous category A",
        "Passenger - Hazardous category B",
        "Passenger - Hazardous category C",
        "Passenger - Hazardous category D",
        "Passenger - Reserved for future use",
        "Passenger - Reserved for future use",
        "Passenger - Reserved for future use",
        "Passenger - Reserved for future use",
        "Passenger - No additional information",
        // 70
        "Cargo - all ships of this type",
        "Cargo - Hazardous category A",
        "Cargo - Hazardous category B",
        "Cargo - Hazardous category C",
        "Cargo - Hazardous category D",
        "Cargo - Reserved for future use",
        "Cargo - Reserved for future use",
        "Cargo - Reserved for future use",
        "Cargo - Reserved for future use",
        "Cargo - No additional information",
        // 80
        "Tanker - all ships of this type",
        "Tanker - Hazardous category A",
        "Tanker - Hazardous category B",
        "Tanker - Hazardous category C",
        "Tanker - Hazardous category D",
        "Tanker - Reserved for future use",
        "Tanker - Reserved for future use",
        "Tanker - Reserved for future use",
        "Tanker - Reserved for future use",
        "Tanker - No additional information",
        // 90
        "Other Type - all ships of this type",
        "Other Type - Hazardous category A",
        "Other Type - Hazardous category B",
        "Other Type - Hazardous category C",
        "Other Type - Hazardous category D",
        "Other Type - Reserved for future use",
        "Other Type - Reserved for future use",
        "Other Type - Reserved for future use",
        "Other Type - Reserved for future use",
        "Other Type - no additional information",
    ];
    T.get(shiptype as usize).copied().unwrap_or("INVALID SHIP TYPE")
}

/// Aid-to-navigation type (type 21).
pub fn aid_type_text(aid_type: u8) -> &'static str {
    const T: [&str; 32] = [
        "Unspecified",
        "Reference point",
        "RACON",
        "Fixed offshore structure",
        "Spare, Reserved for future use.",
        "Light, without sectors",
        "Light, with sectors",
        "Leading Light Front",
        "Leading Light Rear",
        "Beacon, Cardinal N",
        "Beacon, Cardinal E",
        "Beacon, Cardinal S",
        "Beacon, Cardinal W",
        "Beacon, Port hand",
        "Beacon, Starboard hand",
        "Beacon, Preferred Channel port hand",
        "Beacon, Preferred Channel starboard hand",
        "Beacon, Isolated danger",
        "Beacon, Safe water",
        "Beacon, Special mark",
        "Cardinal Mark N",
        "Cardinal Mark E",
        "Cardinal Mark S",
        "Cardinal Mark W",
        "Port hand Mark",
        "Starboard hand Mark",
        "Preferred Channel Port hand",
        "Preferred Channel Starboard hand",
        "Isolated danger",
        "Safe Water",
        "Special Mark",
        "Light Vessel / LANBY / Rigs",
    ];
    T.get(aid_type as usize).copied().unwrap_or("INVALID NAVAID TYPE")
}

/// Station type addressed by a group assignment (type 23).
pub fn station_type_text(stationtype: u8) -> &'static str {
    match stationtype {
        0 => "All types of mobiles",
        2 => "All types of Class B mobile stations",
        3 => "SAR airborne mobile station",
        4 => "Aid to Navigation station",
        5 => "Class B shipborne mobile station",
        6..=9 => "Regional use and inland waterways",
        1 | 10..=15 => "Reserved for future use",
        _ => "INVALID STATION TYPE",
    }
}

/// Inland hazardous-cargo code (type 8, DAC 200 FID 10).
pub fn inland_hazard_text(hazard: u8) -> &'static str {
    const T: [&str; 6] = [
        "0 blue cones/lights",
        "1 blue cone/light",
        "2 blue cones/lights",
        "3 blue cones/lights",
        "4 B-Flag",
        "Unknown",
    ];
    T.get(hazard as usize).copied().unwrap_or("INVALID HAZARD TYPE")
}

/// Inland load status (type 8, DAC 200 FID 10).
pub fn inland_loaded_text(loaded: u8) -> &'static str {
    const T: [&str; 3] = ["N/A (default)", "Unloaded", "Loaded"];
    T.get(loaded as usize).copied().unwrap_or("INVALID LOAD STATUS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ship_types_as_gpsd_prints_them() {
        assert_eq!(shiptype_text(90), "Other Type - all ships of this type");
        assert_eq!(shiptype_text(69), "Passenger - No additional information");
        assert_eq!(shiptype_text(99), "Other Type - no additional information");
        assert_eq!(shiptype_text(72), "Cargo - Hazardous category B");
        assert_eq!(shiptype_text(46), "High speed craft (HSC) - Reserved for future use");
        assert_eq!(shiptype_text(25), "Wing in ground (WIG) - Reserved for future use");
        assert_eq!(shiptype_text(37), "Pleasure Craft");
        assert_eq!(shiptype_text(100), "INVALID SHIP TYPE");
    }
}
