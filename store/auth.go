package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// RootUser is etcd's root user, which bosun servers are: their client
// certificates carry it as Common Name.
const RootUser = "root"

// EnableAuth turns etcd's permission checks on, once, with a root user
// that has no password: it authenticates by its client certificate alone
// (etcd must require client certificates, see EmbeddedConfig.TLS). cli
// must be root's already, or the cluster's auth must still be off.
func EnableAuth(ctx context.Context, cli *clientv3.Client) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		return fmt.Errorf("etcd auth status: %w", err)
	}
	if st.Enabled {
		return nil
	}
	if _, err := cli.UserAddWithOptions(ctx, RootUser, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("etcd root user: %w", err)
	}
	if _, err := cli.UserGrantRole(ctx, RootUser, "root"); err != nil {
		return fmt.Errorf("etcd root user: %w", err)
	}
	if _, err := cli.AuthEnable(ctx); err != nil {
		return fmt.Errorf("enable etcd auth: %w", err)
	}
	return nil
}

// AllowNode creates the etcd user of a node (user is the Common Name of
// the node's certificate) with a role that reads bosun's state and writes
// only the node's own keys: its node object, the statuses of its pods
// (podstatus/<node>/), its events (events/<node>/) and the records of
// its local volumes (volumes/<node>/). The leader writes everything else; a node whose
// certificate leaks cannot bind pods, change Services or report for
// another node. Safe to call again for the same node.
func AllowNode(ctx context.Context, cli *clientv3.Client, user, node string) error {
	ctx, cancel := context.WithTimeout(ctx, requestTimeout)
	defer cancel()
	if _, err := cli.RoleAdd(ctx, user); err != nil && !errors.Is(err, rpctypes.ErrRoleAlreadyExist) {
		return fmt.Errorf("etcd role of node %s: %w", node, err)
	}
	statuses := Prefix + PodStatusPrefix + node + "/"
	events := EventSourcePrefix(node)
	volumes := VolumeNodePrefix(node)
	grants := []struct {
		key, end string
		perm     clientv3.PermissionType
	}{
		{Prefix, clientv3.GetPrefixRangeEnd(Prefix), clientv3.PermissionType(clientv3.PermRead)},
		{NodeKey(node), "", clientv3.PermissionType(clientv3.PermReadWrite)},
		{statuses, clientv3.GetPrefixRangeEnd(statuses), clientv3.PermissionType(clientv3.PermReadWrite)},
		{events, clientv3.GetPrefixRangeEnd(events), clientv3.PermissionType(clientv3.PermReadWrite)},
		{volumes, clientv3.GetPrefixRangeEnd(volumes), clientv3.PermissionType(clientv3.PermReadWrite)},
	}
	for _, g := range grants {
		if _, err := cli.RoleGrantPermission(ctx, user, g.key, g.end, g.perm); err != nil {
			return fmt.Errorf("etcd role of node %s: grant %s: %w", node, g.key, err)
		}
	}
	if _, err := cli.UserAddWithOptions(ctx, user, "", &clientv3.UserAddOptions{NoPassword: true}); err != nil && !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		return fmt.Errorf("etcd user of node %s: %w", node, err)
	}
	if _, err := cli.UserGrantRole(ctx, user, user); err != nil {
		return fmt.Errorf("etcd user of node %s: %w", node, err)
	}
	return nil
}
