package podnet

import (
	"encoding/json"
	"testing"

	"github.com/octohq/octo/internal/config"
)

func TestConfListIsBridgeWithGatewayOnBridgeIP(t *testing.T) {
	var conf struct {
		Name    string `json:"name"`
		Plugins []struct {
			Type   string `json:"type"`
			Bridge string `json:"bridge"`
			IPAM   struct {
				Ranges [][]struct{ Subnet, Gateway string } `json:"ranges"`
			} `json:"ipam"`
		} `json:"plugins"`
	}
	if err := json.Unmarshal([]byte(ConfList()), &conf); err != nil {
		t.Fatalf("conflist is not JSON: %v", err)
	}
	if conf.Name != NetworkName || len(conf.Plugins) != 2 || conf.Plugins[0].Type != "bridge" || conf.Plugins[1].Type != "portmap" {
		t.Fatalf("conflist = %+v", conf)
	}
	r := conf.Plugins[0].IPAM.Ranges[0][0]
	if conf.Plugins[0].Bridge != config.BridgeName || r.Subnet != config.NodePodCIDR || r.Gateway != config.BridgeIP {
		t.Fatalf("bridge %s range %+v", conf.Plugins[0].Bridge, r)
	}
}
