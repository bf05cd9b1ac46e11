use crate::pci::Bdf;
use crate::pci::attr::parse_decimal_u32;

/// What `/proc/driver/nvidia/gpus/<bdf>/information` says about one GPU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuInformation {
    /// `Model:`, e.g. `NVIDIA H100 80GB HBM3`.
    pub model: Option<String>,
    /// `GPU UUID:`, e.g. `GPU-5a4e...`.
    pub uuid: Option<String>,
    /// `Bus Location:`.
    pub bus_location: Option<Bdf>,
    /// `Device Minor:`: N of `/dev/nvidiaN`. Not in BDF order on real hosts.
    pub device_minor: u32,
}

/// Parses the `Key: value` lines of an `information` file; `Device Minor` is required.
pub fn parse_information(text: &str) -> Result<GpuInformation, &'static str> {
    let mut model = None;
    let mut uuid = None;
    let mut bus_location = None;
    let mut device_minor = None;
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        let text = (!value.is_empty() && value != "N/A").then(|| value.to_owned());
        match key.trim() {
            "Model" => model = text,
            "GPU UUID" => uuid = text,
            "Bus Location" => {
                bus_location =
                    Some(Bdf::parse(value).map_err(|_| "Bus Location is not a PCI address")?);
            }
            "Device Minor" => {
                device_minor =
                    Some(parse_decimal_u32(value).map_err(|_| "Device Minor is not a number")?);
            }
            _ => {}
        }
    }
    let device_minor = device_minor.ok_or("no `Device Minor:` line")?;
    Ok(GpuInformation {
        model,
        uuid,
        bus_location,
        device_minor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const H100: &str = "Model: \t\t NVIDIA H100 80GB HBM3\nIRQ:   \t\t 0\n\
                        GPU UUID: \t GPU-8d3ef2b5-6a1c-4f0e-9b7d-2c5a9e1f3b40\nVideo BIOS: \t 96.00.99.00.01\n\
                        Bus Type: \t PCIe\nDMA Size: \t 52 bits\nDMA Mask: \t 0xfffffffffffff\n\
                        Bus Location: \t 0000:1b:00.0\nDevice Minor: \t 3\nGPU Excluded:\t No\n";

    #[test]
    fn reads_a_real_information_file() {
        let info = parse_information(H100).unwrap();
        assert_eq!(info.model.as_deref(), Some("NVIDIA H100 80GB HBM3"));
        assert_eq!(
            info.uuid.as_deref(),
            Some("GPU-8d3ef2b5-6a1c-4f0e-9b7d-2c5a9e1f3b40")
        );
        assert_eq!(info.bus_location.unwrap().to_string(), "0000:1b:00.0");
        assert_eq!(info.device_minor, 3);
    }

    #[test]
    fn device_minor_is_required_and_numeric() {
        assert_eq!(
            parse_information("Model: x\n"),
            Err("no `Device Minor:` line")
        );
        assert_eq!(
            parse_information("Device Minor: three\n"),
            Err("Device Minor is not a number")
        );
        assert_eq!(
            parse_information("Device Minor: 0\nBus Location: 1b:00.0\n"),
            Err("Bus Location is not a PCI address")
        );
    }
}
