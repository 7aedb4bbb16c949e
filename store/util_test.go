package store

import (
	"strconv"

	"k8s.io/apimachinery/pkg/types"
)

func itoa(i int) string           { return strconv.Itoa(i) }
func typesUID(s string) types.UID { return types.UID(s) }
