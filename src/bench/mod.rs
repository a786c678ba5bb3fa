//! In-process benchmarks of the kernel's parts (`pollsim bench ...`): no
//! tap, no root, no network; frames are built in memory and fed to the
//! netisr as the NIC would.

pub mod demux;
pub mod reactor;
pub mod reactor_plot;
pub mod rig;
