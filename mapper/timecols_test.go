package mapper

import (
	"database/sql"
	"errors"
	"reflect"
	"testing"
	"time"
)

type stampedModel struct {
	ID      int64        `db:"id,pk,auto"`
	Created time.Time    `db:"created_at,created"`
	Updated sql.NullTime `db:"updated_at,updated"`
	Gone    *time.Time   `db:"deleted_at,softdelete"`
}

func (stampedModel) TableName() string { return "stamped" }

type softDeleteNotNullable struct {
	ID   int64     `db:"id,pk"`
	Gone time.Time `db:"deleted_at,softdelete"`
}

type createdNotTime struct {
	ID      int64  `db:"id,pk"`
	Created string `db:"created_at,created"`
}

type twoSoftDeletes struct {
	ID int64      `db:"id,pk"`
	A  *time.Time `db:"a,softdelete"`
	B  *time.Time `db:"b,softdelete"`
}

func TestTimeColumnsAreRecordedOnTheTable(t *testing.T) {
	tab, err := NewRegistry().Table(reflect.TypeFor[stampedModel]())
	if err != nil {
		t.Fatal(err)
	}
	if tab.SoftDelete == nil || tab.SoftDelete.Name != "deleted_at" || !tab.SoftDelete.SoftDelete {
		t.Errorf("SoftDelete = %+v, want the deleted_at column", tab.SoftDelete)
	}
	if len(tab.Stamps) != 2 || !tab.Stamps[0].Created || !tab.Stamps[1].Updated {
		t.Errorf("Stamps = %v, want created_at then updated_at", tab.Stamps)
	}
}

func TestTimeColumnsRefuseFieldsTallyCannotFill(t *testing.T) {
	tests := []struct {
		typ    reflect.Type
		field  string
		reason string
	}{
		{reflect.TypeFor[softDeleteNotNullable](), "Gone", "a softdelete column must be *time.Time or sql.NullTime (NULL means not deleted)"},
		{reflect.TypeFor[createdNotTime](), "Created", "a created or updated column must be time.Time, *time.Time or sql.NullTime"},
		{reflect.TypeFor[twoSoftDeletes](), "B", "a second softdelete column (the first is A)"},
	}
	for _, tt := range tests {
		_, err := NewRegistry().Table(tt.typ)
		var de *DefinitionError
		if !errors.As(err, &de) || de.Field != tt.field || de.Reason != tt.reason {
			t.Errorf("Table(%v) = %v; want field %s: %s", tt.typ, err, tt.field, tt.reason)
		}
	}
}
