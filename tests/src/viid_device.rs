//! A fake GA/T 1400 device (a checkpoint camera or a lower platform) for tests: registers with
//! HTTP Digest as RFC 7616 describes and the standard's register flow uses it (a first POST
//! without credentials, a 401 with the challenge, the POST again with the answer), keeps alive
//! and posts objects with its `User-Identify` header. Built from the standard's message shapes,
//! not from any vendor's code.

use crate::{request_with_headers, FullResponse};
use md5::{Digest, Md5};
use std::collections::BTreeMap;
use std::net::SocketAddr;

pub struct ViidDevice {
    pub platform: SocketAddr,
    pub id: String,
    pub username: String,
    pub password: String,
    nc: u32,
}

fn md5_hex(s: &str) -> String {
    Md5::digest(s.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// The parameters of a `WWW-Authenticate: Digest ...` challenge.
pub fn challenge_params(header: &str) -> BTreeMap<String, String> {
    let rest = header.strip_prefix("Digest ").expect("a Digest challenge");
    let mut out = BTreeMap::new();
    for part in rest.split(", ") {
        if let Some((k, v)) = part.split_once('=') {
            out.insert(k.trim().to_string(), v.trim().trim_matches('"').to_string());
        }
    }
    out
}

impl ViidDevice {
    pub fn new(platform: SocketAddr, id: &str, password: &str) -> ViidDevice {
        ViidDevice { platform, id: id.into(), username: id.into(), password: password.into(), nc: 0 }
    }

    pub fn post(&self, path: &str, body: &str) -> FullResponse {
        let headers = [("Content-Type", "application/VIID+JSON"), ("User-Identify", self.id.as_str())];
        request_with_headers(self.platform, "POST", path, &headers, body.as_bytes()).expect("VIID request")
    }

    pub fn get(&self, path: &str) -> FullResponse {
        request_with_headers(self.platform, "GET", path, &[("User-Identify", self.id.as_str())], b"")
            .expect("VIID request")
    }

    fn register_body(&self) -> String {
        format!(r#"{{"RegisterObject":{{"DeviceID":"{}"}}}}"#, self.id)
    }

    /// The first half of registering: the POST without credentials, answered 401.
    pub fn ask_challenge(&self) -> FullResponse {
        let headers = [("Content-Type", "application/VIID+JSON")];
        let body = self.register_body();
        request_with_headers(self.platform, "POST", "/VIID/System/Register", &headers, body.as_bytes())
            .expect("VIID request")
    }

    /// The `Authorization` header answering `challenge` for `path`.
    pub fn answer(&mut self, challenge: &str, path: &str) -> String {
        let p = challenge_params(challenge);
        self.nc += 1;
        let nc = format!("{:08x}", self.nc);
        let cnonce = format!("c{:x}", self.nc * 7919);
        let ha1 = md5_hex(&format!("{}:{}:{}", self.username, p["realm"], self.password));
        let ha2 = md5_hex(&format!("POST:{path}"));
        let response = md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", p["nonce"]));
        format!(
            r#"Digest username="{}", realm="{}", nonce="{}", uri="{path}", algorithm=MD5, qop=auth, nc={nc}, cnonce="{cnonce}", response="{response}""#,
            self.username, p["realm"], p["nonce"]
        )
    }

    /// Register: challenge, then answer. Returns the second answer.
    pub fn register(&mut self) -> FullResponse {
        let first = self.ask_challenge();
        assert_eq!(first.status, 401, "a register without credentials must be challenged: {}", first.body);
        let challenge = first.header("www-authenticate").expect("WWW-Authenticate").to_string();
        let auth = self.answer(&challenge, "/VIID/System/Register");
        let headers = [("Content-Type", "application/VIID+JSON"), ("Authorization", auth.as_str())];
        let body = self.register_body();
        request_with_headers(self.platform, "POST", "/VIID/System/Register", &headers, body.as_bytes())
            .expect("VIID request")
    }

    pub fn keepalive(&self) -> FullResponse {
        self.post("/VIID/System/Keepalive", &format!(r#"{{"KeepaliveObject":{{"DeviceID":"{}"}}}}"#, self.id))
    }

    pub fn unregister(&self) -> FullResponse {
        self.post("/VIID/System/UnRegister", &format!(r#"{{"UnRegisterObject":{{"DeviceID":"{}"}}}}"#, self.id))
    }
}

/// A `MotorVehicleObject` as GA/T 1400.4 lays it out; `image_type` adds one sub-image of that
/// type (`01` the vehicle, `04` the driver's face, ...).
pub fn motor_vehicle(id: &str, plate: &str, tollgate: &str, device: &str, image_type: Option<&str>) -> String {
    let images = image_type
        .map(|t| {
            format!(
                r#","SubImageList":{{"SubImageInfoObject":[{{"ImageID":"{id}-1","EventSort":1,"DeviceID":"{device}","StoragePath":"","Type":"{t}","FileFormat":"Jpeg","ShotTime":"20261130180000","Width":1920,"Height":1080,"Data":"{}"}}]}}"#,
                "QUFB".repeat(1000)
            )
        })
        .unwrap_or_default();
    format!(
        r#"{{"MotorVehicleID":"{id}","InfoKind":1,"SourceID":"{id}","TollgateID":"{tollgate}","DeviceID":"{device}","LaneNo":2,"HasPlate":"1","PlateClass":"02","PlateColor":"2","PlateNo":"{plate}","PlateReliability":"90","Direction":"1","VehicleClass":"K33","VehicleColor":"A","VehicleBrand":"12","Speed":"52","PassTime":"20261130180000"{images}}}"#
    )
}

/// A body of motor-vehicle objects.
pub fn motor_vehicles(objects: &[String]) -> String {
    format!(r#"{{"MotorVehicleListObject":{{"MotorVehicleObject":[{}]}}}}"#, objects.join(","))
}

/// The statuses of a `ResponseStatusListObject`: `(Id, StatusCode)` in order.
pub fn statuses(r: &FullResponse) -> Vec<(String, i64)> {
    r.json()["ResponseStatusListObject"]["ResponseStatusObject"]
        .as_array()
        .unwrap_or_else(|| panic!("no status list: {}", r.body))
        .iter()
        .map(|s| (s["Id"].as_str().unwrap_or_default().to_string(), s["StatusCode"].as_i64().expect("StatusCode")))
        .collect()
}
