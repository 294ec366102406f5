// Hive's metastore as a service of its own, for a local Spark Connect server (atlas/warehouse/sparklocal.py).
//
// Run from pyspark's jars with Java's source launcher (JDK 11+; nothing is compiled or stored ahead):
//   java -cp "$PYSPARK/jars/*" AtlasLocalMetastore.java 127.0.0.1 PORT key=value...
// where each key=value is a Hive setting (the Derby database, the warehouse directory).
//
// Why: a Spark server with its metastore embedded opens a metastore session (a RawStore, a
// HiveConf parsed from XML) for every thread that touches the catalogue, and Spark Connect runs
// every request in a new thread. Here, the Spark server's one client connection is served by one
// long-lived thread whose session is kept. Hive's own launcher (HiveMetaStore.main) listens on every
// interface; this one binds the address it is given (the loopback), and nothing else differs:
// the same handler, the same thrift protocol.
import java.net.InetSocketAddress;
import org.apache.hadoop.hive.conf.HiveConf;
import org.apache.hadoop.hive.metastore.HiveMetaStore;
import org.apache.hadoop.hive.metastore.api.ThriftHiveMetastore;
import org.apache.thrift.protocol.TBinaryProtocol;
import org.apache.thrift.server.TThreadPoolServer;
import org.apache.thrift.transport.TServerSocket;

public class AtlasLocalMetastore {
  public static void main(String[] args) throws Exception {
    if (args.length < 2) {
      System.err.println("usage: AtlasLocalMetastore HOST PORT [hive.setting=value ...]");
      System.exit(2);
    }
    HiveConf conf = new HiveConf();
    for (int i = 2; i < args.length; i++) {
      String[] kv = args[i].split("=", 2);
      conf.set(kv[0], kv.length > 1 ? kv[1] : "");
    }
    ThriftHiveMetastore.Iface handler = HiveMetaStore.newRetryingHMSHandler("atlas-local-metastore", conf, false);
    TServerSocket socket = new TServerSocket(new InetSocketAddress(args[0], Integer.parseInt(args[1])));
    TThreadPoolServer.Args options = new TThreadPoolServer.Args(socket)
        .processor(new ThriftHiveMetastore.Processor<>(handler))
        .protocolFactory(new TBinaryProtocol.Factory())
        .minWorkerThreads(1)
        .maxWorkerThreads(64);
    System.out.println("AtlasLocalMetastore listening on " + args[0] + ":" + args[1]);
    new TThreadPoolServer(options).serve();
  }
}
