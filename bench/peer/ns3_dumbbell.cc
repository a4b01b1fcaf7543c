// The dumbbell of ../shared/anchors/ns3-tcp.md for ns-3 3.37, written for
// bench/tcplab.sh: sender --(10 x B, 0 ms)--> router --(B, RTT/2)-->
// receiver, a drop-tail queue of one bandwidth-delay product, Bernoulli
// loss on data packets at the receiver's interface, one bulk NewReno flow
// from 0.1 s (SACK, delayed ACKs every 2nd segment, MSS 1448, initial
// window 10, minimum RTO 1 s, classic recovery, buffers of 4 x BDP).
//
// Usage: ns3_dumbbell RATE_BPS RTT_MS LOSS SECONDS SEED
// Prints: after10_mbps=X whole_mbps=Y (goodput counted from 10 s on, and
// the data packets that reached the receiver over the whole run).
#include "ns3/applications-module.h"
#include "ns3/core-module.h"
#include "ns3/internet-module.h"
#include "ns3/network-module.h"
#include "ns3/point-to-point-module.h"

#include <cstdlib>
#include <iostream>

using namespace ns3;

static uint64_t g_bytes_after = 0;
static uint64_t g_data_packets = 0;

static void
SinkRx(Ptr<const Packet> p, const Address&)
{
    if (Simulator::Now().GetSeconds() >= 10.0)
    {
        g_bytes_after += p->GetSize();
    }
}

static void
DeviceRx(Ptr<const Packet> p)
{
    // Data segments are full-sized; ACKs never travel this way.
    if (p->GetSize() > 500)
    {
        g_data_packets++;
    }
}

int
main(int argc, char* argv[])
{
    if (argc != 6)
    {
        std::cerr << "usage: ns3_dumbbell RATE_BPS RTT_MS LOSS SECONDS SEED\n";
        return 2;
    }
    double rate = std::atof(argv[1]);
    double rtt_ms = std::atof(argv[2]);
    double loss = std::atof(argv[3]);
    double secs = std::atof(argv[4]);
    RngSeedManager::SetSeed(1);
    RngSeedManager::SetRun(std::atoi(argv[5]));

    double bdp = rate / 8.0 * rtt_ms / 1000.0;
    Config::SetDefault("ns3::TcpL4Protocol::SocketType", StringValue("ns3::TcpNewReno"));
    Config::SetDefault("ns3::TcpL4Protocol::RecoveryType",
                       TypeIdValue(TcpClassicRecovery::GetTypeId()));
    Config::SetDefault("ns3::TcpSocket::SegmentSize", UintegerValue(1448));
    Config::SetDefault("ns3::TcpSocket::InitialCwnd", UintegerValue(10));
    Config::SetDefault("ns3::TcpSocket::DelAckCount", UintegerValue(2));
    Config::SetDefault("ns3::TcpSocket::SndBufSize", UintegerValue(4 * bdp));
    Config::SetDefault("ns3::TcpSocket::RcvBufSize", UintegerValue(4 * bdp));
    Config::SetDefault("ns3::TcpSocketBase::MinRto", TimeValue(Seconds(1)));
    Config::SetDefault("ns3::TcpSocketBase::Sack", BooleanValue(true));
    Config::SetDefault("ns3::TcpSocketBase::LimitedTransmit", BooleanValue(true));

    NodeContainer nodes;
    nodes.Create(3);
    PointToPointHelper access;
    access.SetDeviceAttribute("DataRate", DataRateValue(DataRate(rate * 10)));
    access.SetChannelAttribute("Delay", TimeValue(MilliSeconds(0)));
    PointToPointHelper neck;
    neck.SetDeviceAttribute("DataRate", DataRateValue(DataRate(rate)));
    neck.SetChannelAttribute("Delay", TimeValue(MilliSeconds(rtt_ms / 2)));
    uint32_t queue = std::max<uint32_t>(4, bdp / 1500);
    neck.SetQueue("ns3::DropTailQueue",
                  "MaxSize",
                  QueueSizeValue(QueueSize(std::to_string(queue) + "p")));
    NetDeviceContainer first = access.Install(nodes.Get(0), nodes.Get(1));
    NetDeviceContainer second = neck.Install(nodes.Get(1), nodes.Get(2));
    InternetStackHelper stack;
    stack.Install(nodes);
    Ipv4AddressHelper ip;
    ip.SetBase("10.1.1.0", "255.255.255.0");
    ip.Assign(first);
    ip.SetBase("10.1.2.0", "255.255.255.0");
    Ipv4InterfaceContainer far = ip.Assign(second);
    Ipv4GlobalRoutingHelper::PopulateRoutingTables();

    Ptr<RateErrorModel> errors = CreateObject<RateErrorModel>();
    errors->SetAttribute("ErrorRate", DoubleValue(loss));
    errors->SetAttribute("ErrorUnit", StringValue("ERROR_UNIT_PACKET"));
    second.Get(1)->SetAttribute("ReceiveErrorModel", PointerValue(errors));
    second.Get(1)->TraceConnectWithoutContext("MacRx", MakeCallback(&DeviceRx));

    BulkSendHelper bulk("ns3::TcpSocketFactory", InetSocketAddress(far.GetAddress(1), 9));
    bulk.SetAttribute("MaxBytes", UintegerValue(0));
    ApplicationContainer sender = bulk.Install(nodes.Get(0));
    sender.Start(Seconds(0.1));
    sender.Stop(Seconds(secs));
    PacketSinkHelper sink("ns3::TcpSocketFactory", InetSocketAddress(Ipv4Address::GetAny(), 9));
    ApplicationContainer receiver = sink.Install(nodes.Get(2));
    receiver.Start(Seconds(0));
    receiver.Stop(Seconds(secs));
    receiver.Get(0)->TraceConnectWithoutContext("Rx", MakeCallback(&SinkRx));

    Simulator::Stop(Seconds(secs));
    Simulator::Run();
    std::cout << "after10_mbps=" << g_bytes_after * 8.0 / (secs - 10.0) / 1e6
              << " whole_mbps=" << g_data_packets * 1448.0 * 8.0 / secs / 1e6 << std::endl;
    Simulator::Destroy();
    return 0;
}
