from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("testapp", "0002_document_parent"),
    ]

    operations = [
        migrations.AddField(
            model_name="document",
            name="submitted_at",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
