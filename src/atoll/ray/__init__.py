"""Running the agents on Ray Serve. Importing this package loads no ``ray``: the modules that need it
import it themselves, so the deployment server and the Kubernetes export stay light."""
