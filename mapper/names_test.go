package mapper

import "testing"

func TestSnakeCase(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"ID", "id"},
		{"Owner", "owner"},
		{"AccountID", "account_id"},
		{"HTTPServer", "http_server"},
		{"CreatedAt", "created_at"},
		{"UserIDs", "user_i_ds"}, // an acronym followed by a plural s reads as a new word; tag such fields
		{"URL", "url"},
		{"APIKey", "api_key"},
		{"Base64Data", "base64_data"},
		{"V2", "v2"},
		{"already_snake", "already_snake"},
		{"lowerStart", "lower_start"},
		{"Über", "über"},
	}
	for _, tt := range tests {
		if got := SnakeCase(tt.in); got != tt.want {
			t.Errorf("SnakeCase(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestPlural(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"account", "accounts"},
		{"entry", "entries"},
		{"category", "categories"},
		{"key", "keys"},
		{"day", "days"},
		{"box", "boxes"},
		{"status", "statuses"},
		{"address", "addresses"},
		{"quiz", "quizes"}, // the simple rules stop here; TableName() covers the rest
		{"batch", "batches"},
		{"wish", "wishes"},
		{"y", "ys"},
		{"http_server", "http_servers"},
	}
	for _, tt := range tests {
		if got := plural(tt.in); got != tt.want {
			t.Errorf("plural(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
