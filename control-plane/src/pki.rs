//! `yiwangctl pki`: create the city CA, issue node certificates, show certificates. The
//! certificate conventions live in `node::mesh::pki`; this module only adds files, defaults
//! and what the operator reads.

use crate::CtlError;
use node::mesh::pki::{self as mesh_pki, CertInfo, CityCa, NodeCert, Validity};
use proto::NodeIdentity;
use std::fmt::Write as _;
use std::path::Path;
use time::OffsetDateTime;

/// Creates a city CA valid for `days` from `now` and writes `out/ca.pem` and `out/ca.key`
/// (mode 0600). Refuses to replace existing files unless `force`.
pub fn init(out: &Path, name: &str, days: u32, now: OffsetDateTime, force: bool) -> Result<CityCa, CtlError> {
    let ca = CityCa::generate(name, Validity::days_from(now, days)?)?;
    ca.write(out, force)?;
    Ok(ca)
}

/// Issues a certificate for `identity` signed by the CA in `ca_dir`, valid for `days` from
/// `now`, and writes `out/node.pem`, `out/node.key` (mode 0600) and `out/ca.pem`. Refuses to
/// replace existing files unless `force`.
pub fn issue(
    ca_dir: &Path,
    identity: &NodeIdentity,
    out: &Path,
    days: u32,
    now: OffsetDateTime,
    force: bool,
) -> Result<NodeCert, CtlError> {
    mesh_pki::check_cert_name(&identity.id)?;
    let ca = CityCa::load(ca_dir)?;
    let validity = Validity::days_from(now, days)?;
    let ca_info = CertInfo::parse(ca.cert_der())?;
    if validity.not_after > ca_info.validity.not_after {
        return Err(CtlError::Usage(format!(
            "the CA in {} expires on {}, before a {days}-day certificate would; pass a smaller --days or renew the CA",
            ca_dir.display(),
            date(ca_info.validity.not_after)
        )));
    }
    let cert = ca.issue(identity, validity)?;
    cert.write(out, ca.cert_pem(), force)?;
    Ok(cert)
}

/// What every certificate in a PEM file says: node id and role (or that it is a CA), subject,
/// issuer, serial, validity and whether it is valid at `now`.
pub fn show(file: &Path, now: OffsetDateTime) -> Result<String, CtlError> {
    let certs = mesh_pki::load_certs(file)?;
    let mut out = String::new();
    for (i, der) in certs.iter().enumerate() {
        let info = CertInfo::parse(der).map_err(|e| match e {
            mesh_pki::PkiError::BadCertificate(m) => mesh_pki::PkiError::BadCertificate(format!(
                "certificate {} of {} in {}: {m}",
                i + 1,
                certs.len(),
                file.display()
            )),
            e => e,
        })?;
        if i > 0 {
            out.push('\n');
        }
        let _ = writeln!(out, "{}: certificate {} of {}", file.display(), i + 1, certs.len());
        match &info.identity {
            Some(who) => {
                let _ = writeln!(out, "  kind:       node certificate");
                let _ = writeln!(out, "  node:       {}", who.id);
                let _ = writeln!(out, "  role:       {}", who.role);
            }
            None => {
                let _ = writeln!(out, "  kind:       CA certificate");
            }
        }
        let _ = writeln!(out, "  subject:    {}", info.subject);
        let _ = writeln!(out, "  issuer:     {}", info.issuer);
        let _ = writeln!(out, "  serial:     {}", info.serial);
        let _ = writeln!(out, "  not before: {}", date(info.validity.not_before));
        let _ = writeln!(out, "  not after:  {}", date(info.validity.not_after));
        let _ = writeln!(out, "  status:     {}", status(&info.validity, now));
        let _ = writeln!(out, "  sha256:     {}", mesh_pki::fingerprint(der));
    }
    Ok(out)
}

fn status(v: &Validity, now: OffsetDateTime) -> String {
    if now < v.not_before {
        format!("NOT YET VALID (starts in {})", span(v.not_before - now))
    } else if now > v.not_after {
        format!("EXPIRED {} ago", span(now - v.not_after))
    } else {
        format!("valid, expires in {}", span(v.not_after - now))
    }
}

fn span(d: time::Duration) -> String {
    match d.whole_days() {
        0 => match d.whole_hours() {
            0 => format!("{} minutes", d.whole_minutes()),
            1 => "1 hour".into(),
            h => format!("{h} hours"),
        },
        1 => "1 day".into(),
        n => format!("{n} days"),
    }
}

/// RFC 3339 in UTC.
pub fn date(t: OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.to_string())
}
